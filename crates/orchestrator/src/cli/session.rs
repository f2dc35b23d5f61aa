//! A mission asked for by `/task` in an OpenCode session, reported there: `attach` and
//! `task --session` (which the plugin starts) share this.
//!
//! The session shows what a user needs, in order: their mission (the command's template is `$ARGUMENTS`
//! alone), the acknowledging agent's line, "picked up as mission m…" (posted here, with a toast), a toast
//! per stage and per finished task, and the summary with the files changed (and the integration branch,
//! when the mission has one). Messages are posted with `noReply`, so no agent answers them.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use opencode_client::{Client, Toast, ToastVariant};

use crate::adapters::gate::ProjectGate;
use crate::adapters::journal::{self, FileJournal};
use crate::cli::error::{CliError, Outcome, with_causes};
use crate::cli::run::{report_state_error, run_mission};
use crate::cli::signals::Signals;
use crate::cli::summary;
use crate::domain::mission::{Event, MissionEvent};
use crate::domain::prompts::first_line;
use crate::domain::settings::Settings;
use crate::domain::task::{TaskEvent, TaskStatus};
use crate::engine::ports::{Agents, Workspace};
use crate::engine::record::Applied;
use crate::engine::{Mission, MissionReport, Ports};

/// The mission of a `/task` command, from the arguments OpenCode reports (which may keep the quotes the
/// user typed around them).
///
/// ```
/// use orchestrator::cli::session::command_mission;
///
/// assert_eq!(command_mission(" \"Add a flag\" "), "Add a flag");
/// assert_eq!(command_mission("Add a \"quoted\" flag"), "Add a \"quoted\" flag");
/// ```
pub fn command_mission(arguments: &str) -> String {
    let arguments = arguments.trim();
    arguments
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(arguments)
        .to_string()
}

/// The OpenCode session a mission reports to.
#[derive(Debug, Clone)]
pub(crate) struct SessionReport {
    client: Client,
    session: String,
}

/// What a mission asked for in a session runs with.
pub(crate) struct SessionMission<'a> {
    /// The project.
    pub(crate) project: &'a Path,
    /// Its settings.
    pub(crate) settings: Settings,
    /// The servers its agents run on.
    pub(crate) servers: Vec<Arc<dyn Agents>>,
    /// The project's repository for isolated work, or `None` (`--no-isolation`).
    pub(crate) workspace: Option<Arc<dyn Workspace>>,
    /// The mission's text.
    pub(crate) text: &'a str,
    /// Whether standard output carries JSON only.
    pub(crate) json: bool,
}

impl SessionReport {
    pub(crate) fn new(client: Client, session: impl Into<String>) -> Self {
        Self {
            client,
            session: session.into(),
        }
    }

    /// Runs one mission for the command, reporting it here; returns its outcome.
    ///
    /// # Errors
    ///
    /// What stopped the mission from starting (its journal, its plan of work); the caller reports it with
    /// [`refused`](Self::refused).
    pub(crate) async fn run(
        &self,
        mission: SessionMission<'_>,
        signals: &mut Signals,
    ) -> Result<Outcome, CliError> {
        let SessionMission {
            project,
            settings,
            servers,
            workspace,
            text,
            json,
        } = mission;
        let id = format!("m{}", crate::engine::record::now_ms());
        let journal = Arc::new(FileJournal::create(
            &journal::missions_dir(project).join(&id),
        )?);
        let ports = Ports {
            servers,
            journal: journal.clone(),
            gates: Arc::new(
                ProjectGate::new(settings.gate.commands.clone(), settings.gate.timeout)
                    .own_build_directories(workspace.is_some()),
            ),
            workspace,
            memory: Some(Arc::new(crate::adapters::memory::SystemMemory::default())),
            records: Some(Arc::new(crate::adapters::records::RecordShelf::new(
                project,
            ))),
        };
        let mission = Mission::create(ports, settings, &id, text)?;
        self.picked_up(&id, text).await;
        let toasts = self.follow(mission.subscribe());
        let report = run_mission(mission, &journal, json, signals).await?;
        let _ = toasts.await;
        let outcome = Outcome::of(&report.view.status);
        self.finished(&report, outcome).await;
        if !json {
            print!("{}", summary::render(&report));
        }
        report_state_error(&report);
        Ok(outcome)
    }

    /// Says in the session, and in a toast, that the mission runs and under which id.
    async fn picked_up(&self, id: &str, text: &str) {
        println!("/task in session {}: {}", self.session, first_line(text));
        self.toast(
            format!("Mission {id} started: {}", first_line(text)),
            ToastVariant::Info,
        )
        .await;
        self.post(&format!(
            "Orchestrator: picked up as mission {id}. Its stages and tasks show as toasts; the summary \
             comes here when it ends (or: `orchestrator status {id}`)."
        ))
        .await;
    }

    /// Toasts the outcome and posts the summary.
    async fn finished(&self, report: &MissionReport, outcome: Outcome) {
        let (message, variant) = match outcome {
            Outcome::Done => ("Mission completed", ToastVariant::Success),
            Outcome::NotDone => ("Mission ended incomplete", ToastVariant::Warning),
            Outcome::Signalled(_) => ("Mission stopped", ToastVariant::Warning),
            Outcome::Paused => (
                "Mission paused at its budget: resume it with a higher one",
                ToastVariant::Warning,
            ),
        };
        self.toast(message.to_string(), variant).await;
        self.post(&summary::session_message(report)).await;
    }

    /// Says in the session, and in a toast, why the mission did not run.
    pub(crate) async fn refused(&self, error: &CliError) {
        let message = format!(
            "The orchestrator did not run this mission: {}",
            with_causes(error)
        );
        eprintln!("orchestrator: {message}");
        self.toast(message.clone(), ToastVariant::Error).await;
        self.post(&message).await;
    }

    /// Shows a toast in the TUI; a failure only loses the toast.
    async fn toast(&self, message: String, variant: ToastVariant) {
        toast(&self.client, message, variant).await;
    }

    /// Posts `text` to the session as a message no agent answers.
    async fn post(&self, text: &str) {
        let mut prompt = opencode_client::Prompt::text(text);
        prompt.no_reply = Some(true);
        if let Err(error) = self.client.prompt(&self.session, &prompt).await {
            eprintln!(
                "orchestrator: could not post to session {}: {error}",
                self.session
            );
        }
    }

    /// Toasts the mission's stages and finished tasks, until the mission's events end.
    fn follow(&self, events: Receiver<Arc<Applied>>) -> tokio::task::JoinHandle<()> {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for applied in events {
                if matches!(
                    &applied.entry.event,
                    Event::Mission {
                        event: MissionEvent::Stopped { .. } | MissionEvent::Finished,
                    }
                ) {
                    // The mission's last event: the toasting ends with it.
                    break;
                }
                if let Some(message) = progress_toast(&applied)
                    && sender.send(message).is_err()
                {
                    return;
                }
            }
        });
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some((message, variant)) = receiver.recv().await {
                toast(&client, message, variant).await;
            }
        })
    }
}

/// The toast for a stage that starts or a task that ends, if the event is one.
fn progress_toast(applied: &Applied) -> Option<(String, ToastVariant)> {
    match &applied.entry.event {
        Event::Mission {
            event: MissionEvent::StageStarted { stage },
        } => Some((format!("Stage: {}", stage.name()), ToastVariant::Info)),
        // The events that may finish a task (an approved task is done once it is integrated, or at once
        // when the mission has no workspace); a task still on its way is no toast yet.
        Event::Task {
            task,
            event:
                TaskEvent::Approved { .. }
                | TaskEvent::Integrated { .. }
                | TaskEvent::IntegrationFailed { .. }
                | TaskEvent::Failed { .. }
                | TaskEvent::WorkerBlocked { .. },
        } => applied
            .view
            .tasks
            .get(task)
            .filter(|state| state.status.is_finished())
            .map(|state| match &state.status {
                TaskStatus::Done => (
                    format!("{task} done: {}", state.spec.title),
                    ToastVariant::Success,
                ),
                status => (format!("{task} {status}"), ToastVariant::Error),
            }),
        _ => None,
    }
}

/// Shows a toast in the TUI; a failure only loses the toast.
pub(crate) async fn toast(client: &Client, message: String, variant: ToastVariant) {
    if let Err(error) = client
        .show_toast(&Toast::new(message, variant).title("Orchestrator"))
        .await
    {
        tracing::warn!(%error, "could not show a toast");
    }
}
