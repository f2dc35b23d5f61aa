//! The one way the engine changes the mission: [`Recorder::record`] applies an event to the view, appends it
//! to the journal (synced) and only then makes the new view current and tells the observers. An event the
//! view rejects, or one the journal cannot keep, changes nothing and halts the mission: a permanent journal
//! error is never retried (a full disk stays full), and every later event is refused at once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::mission::{Entry, Event, JournalError, MissionView, Rejected};
use crate::domain::recall::{MissionRecord, Notes};
use crate::engine::ports::Journal;

/// An event as observers get it: the entry and the view right after it.
#[derive(Debug)]
pub struct Applied {
    /// The entry, as the journal keeps it.
    pub entry: Entry,
    /// The mission right after it.
    pub view: MissionView,
}

/// Why an event was not recorded: the mission cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Halt {
    /// The journal cannot be written.
    #[error(transparent)]
    Journal(Arc<JournalError>),
    /// The engine produced an event its own state does not allow: a bug, reported rather than written.
    #[error("the engine tried to record an event that its state does not allow: {0}")]
    Rejected(Rejected),
}

struct State {
    view: MissionView,
    next_seq: u64,
    halted: Option<Halt>,
    /// The journal folded into what the mission's record needs.
    notes: Notes,
    observers: Vec<mpsc::Sender<Arc<Applied>>>,
}

/// The mission's view and journal, changed only together.
pub struct Recorder {
    journal: Arc<dyn Journal>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Recorder {
    /// A recorder continuing `view`, whose journal holds `view.events` entries, folded into `notes`.
    pub fn new(journal: Arc<dyn Journal>, view: MissionView, notes: Notes) -> Self {
        Self {
            journal,
            state: Mutex::new(State {
                next_seq: view.events + 1,
                view,
                halted: None,
                notes,
                observers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while recording leaves nothing half-done in the state (the view is replaced last).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// The mission now.
    pub fn view(&self) -> MissionView {
        self.lock().view.clone()
    }

    /// Reads the mission now without copying it.
    pub fn read<T>(&self, read: impl FnOnce(&MissionView) -> T) -> T {
        read(&self.lock().view)
    }

    /// Every event from now on, in order, with the view after it. Ends when the recorder is dropped.
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<Applied>> {
        let (sender, receiver) = mpsc::channel();
        self.lock().observers.push(sender);
        receiver
    }

    /// The mission's record as the journal tells it now.
    pub fn mission_record(&self) -> MissionRecord {
        let state = self.lock();
        state.notes.record(&state.view)
    }

    /// Why the recorder halted, if it did.
    pub fn halted(&self) -> Option<Halt> {
        self.lock().halted.clone()
    }

    /// Records one event: applied to the view, appended to the journal, then current. Blocks for the
    /// journal's sync (telling a multi-threaded runtime first, so its other tasks move on).
    ///
    /// # Errors
    ///
    /// [`Halt`] when the event is rejected or cannot be written; then every later call fails the same way.
    pub fn record(&self, event: Event) -> Result<(), Halt> {
        let write = || self.record_blocking(event);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            _ => write(),
        }
    }

    fn record_blocking(&self, event: Event) -> Result<(), Halt> {
        let mut state = self.lock();
        if let Some(halt) = &state.halted {
            return Err(halt.clone());
        }
        let entry = Entry {
            seq: state.next_seq,
            at_ms: now_ms(),
            event,
        };
        let view = match state.view.apply(&entry) {
            Ok(view) => view,
            Err(rejected) => {
                tracing::error!(%rejected, event = ?entry.event, "an event the mission does not allow");
                debug_assert!(false, "the engine recorded an illegal event: {rejected}");
                let halt = Halt::Rejected(rejected);
                state.halted = Some(halt.clone());
                return Err(halt);
            }
        };
        if let Err(error) = self.journal.append(&entry) {
            let halt = Halt::Journal(Arc::new(error));
            tracing::error!(%halt, "the journal cannot be written; the mission stops");
            state.halted = Some(halt.clone());
            return Err(halt);
        }
        state.next_seq += 1;
        state.notes.observe(&entry);
        if !state.observers.is_empty() {
            let applied = Arc::new(Applied {
                entry,
                view: view.clone(),
            });
            state
                .observers
                .retain(|observer| observer.send(Arc::clone(&applied)).is_ok());
        }
        state.view = view;
        Ok(())
    }
}

/// An error and each of its causes that says something its message does not already say.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Halt {
    /// Where the journal is, and what failed with each of its causes: what a stop reports.
    pub fn describe(&self) -> (String, String) {
        match self {
            Halt::Journal(error) => (
                error.path.display().to_string(),
                causes(error.source.as_ref()),
            ),
            Halt::Rejected(rejected) => (String::new(), rejected.to_string()),
        }
    }
}
