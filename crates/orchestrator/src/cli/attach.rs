//! `orchestrator attach`: serves `/task <mission>` typed in the OpenCode TUI of a server that has no plugin
//! (`orchestrator install --no-plugin`, or a server on another machine). It follows the server's events for
//! the `task` command, claims each one ([`claim`]: the plugin, or another `attach`, may serve the same
//! server), runs its mission (one at a time) and reports it in the session that asked
//! (`cli::session::SessionReport`). SIGINT or SIGTERM stops the mission running, or the waiting, and ends `attach`:
//! one [`Signals`] serves its whole life, so a signal after a mission still stops it.

use futures_util::StreamExt as _;
use opencode_client::{Client, EventPayload, StreamItem};

use crate::adapters::claim::{self, Claimed};
use crate::adapters::opencode::{self, ConnectError, Opencode};
use crate::cli::args::AttachArgs;
use crate::cli::error::{CliError, Outcome};
use crate::cli::run::{isolation, parse_model, project_dir, servers, settings, start_logging};
use crate::cli::session::{SessionMission, SessionReport, command_mission};
use crate::cli::signals::Signals;
use crate::cli::{config, install};

/// Runs `attach` until a signal, or after one mission with `--once`.
pub(crate) async fn run(args: AttachArgs) -> Result<Outcome, CliError> {
    parse_model(&args.run)?;
    crate::cli::check_otlp(&args.run)?;
    let project = project_dir(args.project.as_deref())?;
    let file = config::load(&project)?;
    let given: Vec<String> = args.url.iter().cloned().collect();
    let (urls, password) = servers(&given, file.as_ref(), None);
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
            message_id,
        } = event.payload
        else {
            continue;
        };
        if name != install::COMMAND_NAME {
            continue;
        }
        let report = SessionReport::new(client.clone(), &session_id);
        match claim::claim_command(&project, &session_id, &message_id, "attach") {
            Ok(Claimed::Mine { .. }) => {}
            Ok(Claimed::Taken { by, .. }) => {
                println!("/task in session {session_id}: already picked up ({by})");
                continue;
            }
            Err(error) => {
                let error = CliError::from(error);
                report.refused(&error).await;
                last = Outcome::NotDone;
                if args.once {
                    break;
                }
                continue;
            }
        }
        last = match mission(
            &args,
            &project,
            file.as_ref(),
            &client,
            &report,
            &arguments,
            &mut signals,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(error) => {
                report.refused(&error).await;
                Outcome::NotDone
            }
        };
        if args.once || matches!(last, Outcome::Signalled(_)) {
            break;
        }
    }
    Ok(last)
}

/// Runs one mission for `/task` and reports it in its session; returns its outcome.
async fn mission(
    args: &AttachArgs,
    project: &std::path::Path,
    file: Option<&config::Config>,
    client: &Client,
    report: &SessionReport,
    arguments: &str,
    signals: &mut Signals,
) -> Result<Outcome, CliError> {
    let text = command_mission(arguments);
    let text = crate::domain::mission::check_text(&text)?;
    let mut settings = settings(project, file, &args.run, false)?;
    let workspace = isolation(project, args.run.no_isolation, &mut settings, args.run.json).await?;
    let server = Opencode::new(client.clone(), &settings.calls);
    report
        .run(
            SessionMission {
                project,
                settings,
                servers: vec![std::sync::Arc::new(server)],
                workspace,
                text,
                json: args.run.json,
            },
            signals,
        )
        .await
}
