//! The adapters behind the engine's ports: the command line is the one layer that knows both.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::adapters::gate::ProjectGate;
use crate::adapters::journal::FileJournal;
use crate::adapters::memory::SystemMemory;
use crate::adapters::opencode::Opencode;
use crate::domain::agent::{Activities, AgentError, AgentMessage, FileChange, TurnRequest, Update};
use crate::domain::gate::GateReport;
use crate::domain::mission::{Entry, JournalError};
use crate::engine::ports::{Agents, Gates, Journal, Memory};

#[async_trait]
impl Agents for Opencode {
    fn url(&self) -> &str {
        Opencode::url(self)
    }

    async fn create_session(
        &self,
        title: &str,
        parent: Option<&str>,
        directory: Option<&Path>,
    ) -> Result<String, AgentError> {
        Opencode::create_session(self, title, parent, directory).await
    }

    async fn session_exists(&self, session: &str) -> Result<bool, AgentError> {
        Opencode::session_exists(self, session).await
    }

    async fn prompt(&self, session: &str, request: &TurnRequest) -> Result<(), AgentError> {
        Opencode::prompt(self, session, request).await
    }

    async fn prompt_and_wait(
        &self,
        session: &str,
        request: &TurnRequest,
    ) -> Result<AgentMessage, AgentError> {
        Opencode::prompt_and_wait(self, session, request).await
    }

    async fn messages(&self, session: &str) -> Result<Vec<AgentMessage>, AgentError> {
        Opencode::messages(self, session).await
    }

    async fn activities(&self) -> Result<Activities, AgentError> {
        Opencode::activities(self).await
    }

    async fn abort(&self, session: &str) -> Result<(), AgentError> {
        Opencode::abort(self, session).await
    }

    async fn children(&self, session: &str) -> Result<Vec<String>, AgentError> {
        Opencode::children(self, session).await
    }

    async fn changes(&self, session: &str) -> Result<Vec<FileChange>, AgentError> {
        Opencode::changes(self, session).await
    }

    async fn answer_permission(&self, request: &str, allow: bool) -> Result<(), AgentError> {
        Opencode::answer_permission(self, request, allow).await
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        Opencode::updates(self)
    }
}

impl Journal for FileJournal {
    fn location(&self) -> &Path {
        self.directory()
    }

    fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        FileJournal::append(self, entry)
    }

    fn write_plan(&self, markdown: &str) -> Result<PathBuf, JournalError> {
        FileJournal::write_plan(self, markdown)
    }
}

#[async_trait]
impl Gates for ProjectGate {
    async fn run(&self, directory: &Path) -> GateReport {
        ProjectGate::run(self, directory).await
    }
}

impl Memory for SystemMemory {
    fn available(&self) -> Option<f64> {
        SystemMemory::available(self)
    }
}
