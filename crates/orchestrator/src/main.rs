//! The `orchestrator` command: `orchestrator task [--demo] "<mission>"`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use orchestrator::mission::{Mission, MissionConfig};
use orchestrator::progress::{Format, Progress};
use orchestrator::review::gate::GateCommand;
use orchestrator::server::{self, Opencode};
use orchestrator::{OrchestratorError, demo};

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
}

#[derive(Debug, clap::Args)]
struct TaskArgs {
    /// What the agents should do (or give --file).
    #[arg(required_unless_present = "file")]
    mission: Option<String>,
    /// Read the mission from a file (`-` for standard input).
    #[arg(long, conflicts_with = "mission")]
    file: Option<PathBuf>,
    /// Run offline: a scripted model stands in for an LLM, a real OpenCode server (installed from npm into
    /// a cache directory if none is found) works in a scratch project.
    #[arg(long)]
    demo: bool,
    /// The OpenCode server to drive (default http://127.0.0.1:4096); its password from
    /// OPENCODE_SERVER_PASSWORD.
    #[arg(long, conflicts_with = "demo")]
    url: Option<String>,
    /// The project the agents work in (default: the current directory; with --demo, a new scratch
    /// directory).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Worker slots: tasks run at once, at most.
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// A review gate command, run with `sh -c` in the project (repeatable; default: detected from the
    /// project).
    #[arg(long = "check")]
    checks: Vec<String>,
    /// How long a review gate command may run, in seconds.
    #[arg(long, default_value_t = 300)]
    check_timeout: u64,
    /// The model every agent uses, as provider/model (default: the server's).
    #[arg(long)]
    model: Option<String>,
    /// Print one JSON object per state change instead of lines.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Task(args) => task(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("orchestrator: {error}");
            ExitCode::from(2)
        }
    }
}

fn mission_text(args: &TaskArgs) -> Result<String, OrchestratorError> {
    let limit = orchestrator::mission::MAX_MISSION_BYTES as u64;
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

async fn task(args: TaskArgs) -> Result<bool, OrchestratorError> {
    // Check the mission and the options before anything is started for them.
    let mission = mission_text(&args)?;
    let model = match &args.model {
        Some(model) => Some(opencode_client::ModelRef::parse(model).ok_or_else(|| {
            OrchestratorError::Mission(format!(
                "--model {model:?} is not provider/model (for example anthropic/claude-sonnet-4)"
            ))
        })?),
        None => None,
    };
    let mut _demo = None;
    let (client, project, gate) = if args.demo {
        let project = match &args.project {
            Some(project) => project.clone(),
            None => tempfile::Builder::new()
                .prefix("orchestrator-demo-")
                .tempdir()
                .map_err(|source| OrchestratorError::Io {
                    action: "create a scratch directory in",
                    path: std::env::temp_dir(),
                    source,
                })?
                .keep(),
        };
        demo::prepare_project(&project).map_err(|source| OrchestratorError::Io {
            action: "prepare the scratch project",
            path: project.clone(),
            source,
        })?;
        opencode_client::testkit::init_git(&project).map_err(|error| {
            OrchestratorError::Launch {
                message: error.to_string(),
            }
        })?;
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
        _demo = Some(started);
        (client, project, Some(demo::gate()))
    } else {
        let url = args.url.as_deref().unwrap_or("http://127.0.0.1:4096");
        let password = std::env::var("OPENCODE_SERVER_PASSWORD").ok();
        let project = match &args.project {
            Some(project) => project.clone(),
            None => std::env::current_dir().map_err(|source| OrchestratorError::Io {
                action: "read the current directory",
                path: PathBuf::from("."),
                source,
            })?,
        };
        let project = project
            .canonicalize()
            .map_err(|source| OrchestratorError::Io {
                action: "find the project directory",
                path: project.clone(),
                source,
            })?;
        let client = server::connect(url, password.as_deref(), project.to_str()).await?;
        (client, project, None)
    };
    let mut config = MissionConfig::new(&project);
    config.slots = args.slots.max(1);
    config.gate_timeout = Duration::from_secs(args.check_timeout.max(1));
    config.gate = if args.checks.is_empty() {
        gate
    } else {
        Some(
            args.checks
                .iter()
                .map(|line| GateCommand::shell(line))
                .collect(),
        )
    };
    config.model = model;
    let opencode = Opencode::new(client, &config.calls);
    let mission = Mission::new(opencode, config, &mission)?;
    let format = if args.json {
        Format::Json
    } else {
        Format::Lines
    };
    let progress = Progress::start(mission.state(), format, std::io::stdout());
    let report = mission.run().await;
    progress.finish();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "summary",
                "mission": report.view.mission,
                "completed": report.completed(),
                "files": report.files(),
                "sessions": report.session_count(),
                "wall_ms": report.wall.as_millis() as u64,
            })
        );
    } else {
        println!();
        print!("{}", report.render());
        if args.demo {
            println!(
                "A scripted model stood in for an LLM. The scratch project is {}",
                project.display()
            );
        }
    }
    Ok(report.completed())
}
