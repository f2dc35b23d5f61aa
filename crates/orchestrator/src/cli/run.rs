//! What the commands that run missions share: the project, the servers and their password, the settings
//! (defaults, then the configuration file, then the command line), the mission text, and running a mission
//! with its progress view, pid file and signals.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opencode_client::ModelRef;

use crate::adapters::git::GitWorkspace;
use crate::adapters::journal::{self, FileJournal};
use crate::adapters::opencode::{self, DemoServer, Opencode};
use crate::adapters::own_server::{self, OwnServer};
use crate::cli::args::{RunArgs, ServerArgs, TaskArgs};
use crate::cli::error::{CliError, with_causes};
use crate::cli::progress::{Format, Progress};
use crate::cli::signals::{self, Signals};
use crate::cli::{config, demo, logging, summary};
use crate::domain::gate::GateCommand;
use crate::domain::mission::{self, StopCause};
use crate::domain::mission::{Entry, Event, MissionEvent};
use crate::domain::settings::{MAX_MISSION_BYTES, Settings};
use crate::domain::workspace::Head;
use crate::engine::ports::{Agents, Workspace};
use crate::engine::{Mission, MissionReport};

pub(crate) fn project_dir(project: Option<&Path>) -> Result<PathBuf, CliError> {
    let project = match project {
        Some(project) => project.to_path_buf(),
        None => std::env::current_dir().map_err(CliError::io("read the current directory", "."))?,
    };
    project
        .canonicalize()
        .map_err(CliError::io("find the project directory", &project))
}

/// The default server's URL.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:4096";

/// The servers to use (the command line's, else the configuration's, else the default) and their password
/// (from the variable `password_env` names when given, else the configuration's `password_env`, else
/// `OPENCODE_SERVER_PASSWORD`).
pub(crate) fn servers(
    given: &[String],
    file: Option<&config::Config>,
    password_env: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let mut urls = given.to_vec();
    if urls.is_empty() {
        urls = file.map(config::Config::urls).unwrap_or_default();
    }
    if urls.is_empty() {
        urls.push(DEFAULT_URL.to_string());
    }
    let password = match password_env {
        Some(variable) => std::env::var(variable).ok(),
        None => file
            .and_then(config::Config::password)
            .or_else(|| std::env::var("OPENCODE_SERVER_PASSWORD").ok()),
    };
    (urls, password)
}

pub(crate) fn parse_model(run: &RunArgs) -> Result<Option<ModelRef>, CliError> {
    run.model
        .as_ref()
        .map(|given| {
            ModelRef::parse(given)
                .filter(|model| !model.provider_id.is_empty() && !model.model_id.is_empty())
                .ok_or_else(|| CliError::BadModel {
                    given: given.clone(),
                })
        })
        .transpose()
}

/// The mission's settings: the defaults, the project's configuration over them, the command line over
/// both.
pub(crate) fn settings(
    project: &Path,
    file: Option<&config::Config>,
    run: &RunArgs,
    demo: bool,
) -> Result<Settings, CliError> {
    let mut settings = Settings::new(project);
    if demo {
        settings.gate.commands = Some(demo::gate());
    }
    if let Some(file) = file {
        file.apply(&mut settings);
    }
    if let Some(slots) = run.slots {
        settings.slots = slots.max(1);
    }
    if let Some(seconds) = run.check_timeout {
        settings.gate.timeout = Duration::from_secs(seconds.max(1));
    }
    if !run.checks.is_empty() {
        settings.gate.commands = Some(
            run.checks
                .iter()
                .map(|line| GateCommand::shell(line))
                .collect(),
        );
    }
    settings.models.command_line = parse_model(run)?;
    settings.budgets = settings.budgets.over(crate::domain::usage::Budgets {
        cost_nanos: run.max_cost,
        tokens: run.max_tokens,
        time_ms: run.max_time,
        turns_per_task: run.max_turns_per_task,
    });
    Ok(settings)
}

pub(crate) fn mission_text(args: &TaskArgs) -> Result<String, CliError> {
    let limit = MAX_MISSION_BYTES as u64;
    let text = match (&args.mission, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            let io = |source| CliError::MissionFile {
                path: path.clone(),
                source,
            };
            let mut bytes = Vec::new();
            // One byte past the limit: enough to know it is too large without reading all of it.
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(io)?;
            } else {
                let file = std::fs::File::open(path).map_err(io)?;
                let size = file.metadata().map_err(io)?.len();
                if size > limit {
                    return Err(mission::MissionTextError::TooLarge {
                        size: usize::try_from(size).unwrap_or(usize::MAX),
                        limit: MAX_MISSION_BYTES,
                    }
                    .into());
                }
                file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
            }
            String::from_utf8(bytes).map_err(|error| CliError::NotUtf8 {
                path: path.clone(),
                offset: error.utf8_error().valid_up_to(),
            })?
        }
        (None, None) => unreachable!("clap requires a mission or --file"),
    };
    Ok(mission::check_text(&text)?.to_string())
}

/// Starts logging to the project's `.opencode/orchestrator/orchestrator.log`, once for the process; a
/// failure is reported and the command goes on without a log.
pub(crate) fn start_logging(project: &Path, otlp: Option<&url::Url>) -> Option<logging::LogGuard> {
    match logging::init(project, otlp) {
        Ok(guard) => {
            if let Some(endpoint) = otlp {
                eprintln!("orchestrator: exporting traces to {endpoint}");
            }
            Some(guard)
        }
        Err(error) => {
            eprintln!(
                "orchestrator: no log file{}: {}",
                if otlp.is_some() { " and no traces" } else { "" },
                with_causes(&error)
            );
            None
        }
    }
}

/// Where human text goes: standard output, or standard error when standard output carries JSON.
pub(crate) fn say(json: bool, text: &str) {
    if json {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// The servers of a mission, connected: the demo's, each URL's, or the user's own opencode started for it.
pub(crate) struct Servers {
    pub(crate) servers: Vec<Opencode>,
    pub(crate) demo: Option<DemoServer>,
    pub(crate) own: Option<Owned>,
}

/// The user's own `opencode serve`, started for this command: stopped (and forgotten by the hard exit's
/// list) when dropped, whichever way the command ends.
pub(crate) struct Owned(OwnServer);

impl Owned {
    pub(crate) fn url(&self) -> &str {
        self.0.url()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let pid = self.0.pid();
        self.0.stop();
        if let Some(pid) = pid {
            signals::disown_group(i32::try_from(pid).unwrap_or(i32::MAX));
        }
    }
}

impl Servers {
    pub(crate) fn agents(&self) -> Vec<Arc<dyn Agents>> {
        self.servers
            .iter()
            .map(|server| Arc::new(server.clone()) as Arc<dyn Agents>)
            .collect()
    }
}

/// Starts the demo's model and server in `project`.
pub(crate) async fn start_demo(
    project: &Path,
    settings: &Settings,
    json: bool,
) -> Result<Servers, CliError> {
    say(
        json,
        "DEMO: a scripted model stands in for an LLM; it plays a fixed three-task mission",
    );
    say(json, "      whatever the mission text says.");
    say(json, &format!("      project: {}", project.display()));
    say(
        json,
        "      starting a real OpenCode server (installed from npm on first use)...",
    );
    let started = opencode::start_demo(demo::script(), project).await?;
    if let Some(pid) = started.server.pid() {
        signals::own_group(i32::try_from(pid).unwrap_or(i32::MAX));
    }
    say(
        json,
        &format!(
            "      OpenCode {} at {}",
            started.server.binary().display(),
            started.server.url()
        ),
    );
    let client = started.server.client();
    Ok(Servers {
        servers: vec![Opencode::new(client, &settings.calls)],
        demo: Some(started),
        own: None,
    })
}

/// Connects to each server.
pub(crate) async fn connect(
    urls: &[String],
    password: Option<&str>,
    project: &Path,
    settings: &Settings,
) -> Result<Servers, CliError> {
    let mut servers = Vec::new();
    for url in urls {
        let client = opencode::connect(url, password, project).await?;
        servers.push(Opencode::new(client, &settings.calls));
    }
    Ok(Servers {
        servers,
        demo: None,
        own: None,
    })
}

/// The servers of a mission: the demo's; the ones given with `--url` or configured; else the one at the
/// default URL; else, when nothing answers there, the user's own `opencode` started for the mission.
pub(crate) async fn open_servers(
    args: &ServerArgs,
    file: Option<&config::Config>,
    project: &Path,
    settings: &Settings,
    json: bool,
) -> Result<Servers, CliError> {
    if args.demo {
        return start_demo(project, settings, json).await;
    }
    let (urls, password) = servers(&args.urls, file, args.password_env.as_deref());
    let configured = !args.urls.is_empty() || file.is_some_and(|file| !file.urls().is_empty());
    if configured {
        return connect(&urls, password.as_deref(), project, settings).await;
    }
    match opencode::connect(DEFAULT_URL, password.as_deref(), project).await {
        Ok(client) => Ok(Servers {
            servers: vec![Opencode::new(client, &settings.calls)],
            demo: None,
            own: None,
        }),
        Err(opencode::ConnectError::Unreachable {
            source: opencode_client::Error::Connect { .. },
            ..
        }) => start_own(password, project, settings).await,
        Err(error) => Err(error.into()),
    }
}

/// Starts the user's `opencode serve` in `project` (with `password`, or a fresh one) and connects to it.
async fn start_own(
    password: Option<String>,
    project: &Path,
    settings: &Settings,
) -> Result<Servers, CliError> {
    let binary = own_server::find().map_err(|source| CliError::NoServer {
        url: DEFAULT_URL.to_string(),
        source,
    })?;
    let password = password.unwrap_or_else(own_server::new_password);
    let server = OwnServer::start(&binary, project, &password).await?;
    if let Some(pid) = server.pid() {
        signals::own_group(i32::try_from(pid).unwrap_or(i32::MAX));
    }
    let own = Owned(server);
    eprintln!(
        "orchestrator: started your opencode ({}, version {}) at {} for this mission",
        own.0.binary().display(),
        own.0.version(),
        own.url()
    );
    let client = opencode::connect(own.url(), Some(own.0.password()), project).await?;
    Ok(Servers {
        servers: vec![Opencode::new(client, &settings.calls)],
        demo: None,
        own: Some(own),
    })
}

/// A new scratch project for the demo, or the one given.
pub(crate) fn demo_project(given: Option<&Path>) -> Result<PathBuf, CliError> {
    let project = match given {
        Some(project) => {
            std::fs::create_dir_all(project).map_err(CliError::io("create", project))?;
            project
                .canonicalize()
                .map_err(CliError::io("find", project))?
        }
        None => tempfile::Builder::new()
            .prefix("orchestrator-demo-")
            .tempdir()
            .map_err(CliError::io(
                "create a scratch directory in",
                std::env::temp_dir(),
            ))?
            .keep(),
    };
    demo::prepare_project(&project)
        .map_err(CliError::io("prepare the scratch project", &project))?;
    opencode_client::testkit::init_git(&project).map_err(|error| CliError::Io {
        action: "initialize git in",
        path: project.clone(),
        source: std::io::Error::other(error.to_string()),
    })?;
    Ok(project)
}

/// The project's git repository, for isolated work (a worktree per task, a merge queue), checked before
/// anything is started: a directory that is not in a repository, or a repository without a commit, is
/// refused with what to do. `None` with `--no-isolation`: the mission runs one Worker at a time in the
/// project itself (`settings.slots` becomes 1).
pub(crate) async fn isolation(
    project: &Path,
    no_isolation: bool,
    settings: &mut Settings,
    json: bool,
) -> Result<Option<Arc<dyn Workspace>>, CliError> {
    if no_isolation {
        settings.slots = 1;
        say(
            json,
            "No isolation (--no-isolation): one Worker at a time, editing the project itself.",
        );
        return Ok(None);
    }
    let git = GitWorkspace::open(project)
        .await
        .map_err(CliError::Isolation)?;
    let checkout = git.inspect().await.map_err(CliError::Isolation)?;
    if !checkout.changes.is_clean() {
        say(
            json,
            &format!(
                "The project has uncommitted changes ({} changed, {} untracked): they are not part of the \
                 mission, which starts from HEAD ({}); your tree is left as it is.",
                checkout.changes.tracked.len(),
                checkout.changes.untracked.len(),
                checkout.commit.short()
            ),
        );
    }
    if checkout.head == Head::Detached {
        say(
            json,
            &format!(
                "HEAD is detached at {}: the mission starts there, and its result is offered to the detached \
                 HEAD at the end.",
                checkout.commit.short()
            ),
        );
    }
    Ok(Some(Arc::new(git)))
}

/// The isolation a resumed mission keeps: the one it started with. `Some(true)` when its journal says it
/// works in a git worktree per task, `Some(false)` when its work began without, `None` when it stopped
/// before either (a resume decides as `task` does).
pub(crate) fn journaled_isolation(entries: &[Entry]) -> Option<bool> {
    let mut started = false;
    for entry in entries {
        match &entry.event {
            Event::Mission {
                event: MissionEvent::Isolated { .. },
            } => return Some(true),
            Event::Mission {
                event: MissionEvent::StageStarted { .. },
            } => started = true,
            _ => {}
        }
    }
    started.then_some(false)
}

/// Runs a mission with its progress view, its pid file and the signals going to it; returns its report.
pub(crate) async fn run_mission(
    mission: Mission,
    journal: &FileJournal,
    json: bool,
    signals: &mut Signals,
) -> Result<MissionReport, CliError> {
    let directory = journal.directory().to_path_buf();
    let pid_file = journal::pid_path(&directory);
    crate::adapters::files::write_atomically(&pid_file, std::process::id().to_string().as_bytes())
        .map_err(CliError::io("write", &pid_file))?;
    let format = if json {
        Format::Json
    } else if std::io::stdout().is_terminal() {
        Format::Bars
    } else {
        Format::Lines
    };
    let progress = Progress::start(
        mission.subscribe(),
        mission.view(),
        format,
        std::io::stdout(),
        Some(journal::status_path(&directory)),
    );
    let stop = mission.stop_handle();
    let report = tokio::select! {
        report = mission.run() => report,
        () = signals.stop_on_signal(stop) => unreachable!("a hard exit does not return"),
    };
    progress.finish();
    journal.sync();
    let _ = std::fs::remove_file(&pid_file);
    Ok(report)
}

/// Says on standard error why a mission's state could not be kept, when that stopped it: the summary (on
/// standard output, or JSON there) is not where a script or a user looks for an error, and the journal, the
/// status file and the log may all be on the disk that failed.
pub(crate) fn report_state_error(report: &MissionReport) {
    if let Some(cause @ StopCause::Journal { .. }) = report.stop_cause() {
        eprintln!("orchestrator: {cause}");
    }
}

/// Prints the summary and stops what the command started.
pub(crate) fn finish(report: &MissionReport, servers: Servers, json: bool) {
    if json {
        println!("{}", summary::json(report));
    } else {
        println!();
        print!("{}", summary::render(report));
    }
    report_state_error(report);
    if let Some(demo) = servers.demo {
        say(
            json,
            &format!(
                "A scripted model stood in for an LLM. The project is {}",
                demo.server.project_dir().display()
            ),
        );
        let pid = demo.server.pid();
        drop(demo);
        if let Some(pid) = pid {
            signals::disown_group(i32::try_from(pid).unwrap_or(i32::MAX));
        }
    }
    if let Some(own) = servers.own {
        let url = own.url().to_string();
        drop(own);
        eprintln!("orchestrator: stopped your opencode at {url}");
    }
}
