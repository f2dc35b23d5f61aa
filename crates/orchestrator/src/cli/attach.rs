//! `orchestrator attach`: serves `/task <mission>` typed in the OpenCode TUI. It follows the server's events
//! for the `task` command, runs each mission (one at a time), shows its stages and finished tasks as toasts,
//! and posts the summary in the session that asked. SIGINT or SIGTERM stops the mission running, or the
//! waiting, and ends `attach`.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use futures_util::StreamExt as _;
use opencode_client::{Client, EventPayload, StreamItem, Toast, ToastVariant};

use crate::adapters::gate::ProjectGate;
use crate::adapters::journal::{self, FileJournal};
use crate::adapters::opencode::{self, ConnectError, Opencode};
use crate::cli::args::AttachArgs;
use crate::cli::error::{CliError, Outcome, with_causes};
use crate::cli::run::{
    isolation, parse_model, project_dir, report_state_error, run_mission, servers, settings,
    start_logging,
};
use crate::cli::signals::Signals;
use crate::cli::{config, install, summary};
use crate::domain::mission::{Event, MissionEvent};
use crate::domain::prompts::first_line;
use crate::domain::task::{TaskEvent, TaskStatus};
use crate::engine::record::Applied;
use crate::engine::{Mission, Ports};

/// Runs `attach` until a signal, or after one mission with `--once`.
pub(crate) async fn run(args: AttachArgs) -> Result<Outcome, CliError> {
    parse_model(&args.run)?;
    crate::cli::check_otlp(&args.run)?;
    let project = project_dir(args.project.as_deref())?;
    let file = config::load(&project)?;
    let given: Vec<String> = args.url.iter().cloned().collect();
    let (urls, password) = servers(&given, file.as_ref());
    let url = urls[0].clone();
    let _log = start_logging(&project, args.run.otlp.as_ref());
    let client = opencode::connect(&url, password.as_deref(), &project).await?;
    let mut events = client
        .events()
        .await
        .map_err(|source| ConnectError::Unreachable {
            url: url.clone(),
            source,
        })?;
    let mut signals = Signals::listen().map_err(CliError::io("listen for signals in", &project))?;
    println!(
        "Attached to OpenCode at {url}: waiting for `/task <mission>` in project {}",
        project.display()
    );
    let mut last = Outcome::Done;
    loop {
        let item = tokio::select! {
            item = events.next() => item,
            signal = signals.next() => return Ok(Outcome::Signalled(signal)),
        };
        let Some(item) = item else {
            break;
        };
        let item = item.map_err(|source| ConnectError::Unreachable {
            url: url.clone(),
            source,
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
        if name != install::COMMAND_NAME {
            continue;
        }
        // OpenCode may pass the arguments quoted as typed.
        let arguments = arguments.trim();
        let text = arguments
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(arguments)
            .to_string();
        println!("/task in session {session_id}: {}", first_line(&text));
        last = match mission(&args, &project, file.as_ref(), &client, &text, &mut signals).await {
            Ok((outcome, message)) => {
                post(&client, &session_id, &message).await;
                outcome
            }
            Err(error) => {
                let message = format!(
                    "The orchestrator did not run this mission: {}",
                    with_causes(&error)
                );
                eprintln!("orchestrator: {message}");
                toast(&client, message.clone(), ToastVariant::Error).await;
                post(&client, &session_id, &message).await;
                Outcome::NotDone
            }
        };
        if args.once || matches!(last, Outcome::Signalled(_)) {
            break;
        }
    }
    Ok(last)
}

/// Runs one mission for `/task`; returns its outcome and the message for the session.
async fn mission(
    args: &AttachArgs,
    project: &std::path::Path,
    file: Option<&config::Config>,
    client: &Client,
    text: &str,
    signals: &mut Signals,
) -> Result<(Outcome, String), CliError> {
    let text = crate::domain::mission::check_text(text)?;
    let mut settings = settings(project, file, &args.run, false)?;
    let workspace = isolation(project, args.run.no_isolation, &mut settings, args.run.json).await?;
    let id = format!("m{}", crate::engine::record::now_ms());
    let journal = Arc::new(FileJournal::create(
        &journal::missions_dir(project).join(&id),
    )?);
    let server = Opencode::new(client.clone(), &settings.calls);
    let ports = Ports {
        servers: vec![Arc::new(server)],
        journal: journal.clone(),
        gates: Arc::new(
            ProjectGate::new(settings.gate.commands.clone(), settings.gate.timeout)
                .own_build_directories(workspace.is_some()),
        ),
        workspace,
        memory: Some(Arc::new(crate::adapters::memory::SystemMemory::default())),
    };
    let mission = Mission::create(ports, settings, &id, text)?;
    toast(
        client,
        format!("Mission {id} started: {}", first_line(text)),
        ToastVariant::Info,
    )
    .await;
    let toasts = toasts(mission.subscribe(), client.clone());
    let report = run_mission(mission, &journal, args.run.json, signals).await?;
    let _ = toasts.await;
    let outcome = Outcome::of(&report.view.status);
    let (message, variant) = match outcome {
        Outcome::Done => ("Mission completed", ToastVariant::Success),
        Outcome::NotDone => ("Mission ended incomplete", ToastVariant::Warning),
        Outcome::Signalled(_) => ("Mission stopped", ToastVariant::Warning),
        Outcome::Paused => (
            "Mission paused at its budget: resume it with a higher one",
            ToastVariant::Warning,
        ),
    };
    toast(client, message.to_string(), variant).await;
    print!("{}", summary::render(&report));
    report_state_error(&report);
    Ok((outcome, summary::session_message(&report)))
}

/// Shows a toast in the TUI; a failure only loses the toast.
async fn toast(client: &Client, message: String, variant: ToastVariant) {
    if let Err(error) = client
        .show_toast(&Toast::new(message, variant).title("Orchestrator"))
        .await
    {
        tracing::warn!(%error, "could not show a toast");
    }
}

/// Posts `text` to a session as a message the agent does not answer.
async fn post(client: &Client, session: &str, text: &str) {
    let mut prompt = opencode_client::Prompt::text(text);
    prompt.no_reply = Some(true);
    if let Err(error) = client.prompt(session, &prompt).await {
        eprintln!("orchestrator: could not post the summary to session {session}: {error}");
    }
}

/// Toasts the mission's stages and finished tasks, until the mission's events end.
fn toasts(events: Receiver<Arc<Applied>>, client: Client) -> tokio::task::JoinHandle<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for applied in events {
            let message = match &applied.entry.event {
                Event::Mission {
                    event: MissionEvent::StageStarted { stage },
                } => Some((format!("Stage: {}", stage.name()), ToastVariant::Info)),
                Event::Mission {
                    event: MissionEvent::Stopped { .. } | MissionEvent::Finished,
                } => {
                    // The mission's last event: the toasting ends with it.
                    break;
                }
                Event::Task {
                    task,
                    event:
                        TaskEvent::Approved { .. }
                        | TaskEvent::Failed { .. }
                        | TaskEvent::WorkerBlocked { .. },
                } => applied
                    .view
                    .tasks
                    .get(task)
                    .map(|state| match &state.status {
                        TaskStatus::Done => (
                            format!("{task} done: {}", state.spec.title),
                            ToastVariant::Success,
                        ),
                        status => (format!("{task} {status}"), ToastVariant::Error),
                    }),
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
            toast(&client, message, variant).await;
        }
    })
}
