//! Ctrl-C and SIGTERM: the first one stops the mission through its [`StopHandle`] (its turns end, its
//! sessions are aborted, its state is recorded) and the command returns as usual, stopping what it
//! started; if that takes longer than [`HARD_DEADLINE`], or a second signal comes, the processes the command
//! started are killed and it exits at once. A panic kills them too (a panic hook, installed with the first
//! [`own_group`]): unwinding may not reach the code that stops them, and after a panic the orchestrator's
//! state cannot be trusted to.

use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::domain::mission::{Signal, StopCause};
use crate::engine::StopHandle;

/// How long a stopping mission may take before the process exits anyway.
pub const HARD_DEADLINE: Duration = Duration::from_secs(5);

/// Process groups the command started (the demo's OpenCode server, the user's own one): killed on a hard
/// exit or a panic, which skip the code that would stop them otherwise.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Registers a process group to kill on a hard exit or a panic.
pub fn own_group(pgid: i32) {
    static PANIC_HOOK: Once = Once::new();
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            kill_groups();
        }));
    });
    GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pgid);
}

/// Forgets a process group (it was stopped the usual way).
pub fn disown_group(pgid: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|group| *group != pgid);
}

/// Kills the registered process groups (SIGKILL) and forgets them.
fn kill_groups() {
    for group in GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain(..)
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Kills the registered process groups and exits with `code`.
fn hard_exit(code: i32) -> ! {
    kill_groups();
    std::process::exit(code);
}

/// Where signals go.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens for SIGINT and SIGTERM (for the whole life of the command: `attach` keeps one for all its
    /// missions).
    ///
    /// # Errors
    ///
    /// The I/O error when the handlers cannot be installed.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }

    /// Stops `mission` at the first signal, then exits hard at a second one or after [`HARD_DEADLINE`].
    /// Runs until the future is dropped (when the mission has returned).
    pub async fn stop_on_signal(&mut self, mission: StopHandle) {
        let signal = self.next().await;
        eprintln!(
            "orchestrator: {}: stopping (aborting sessions, saving state); again to exit at once",
            signal.name()
        );
        mission.stop(StopCause::Signal { signal });
        let code = match signal {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        };
        tokio::select! {
            _ = self.next() => {}
            () = tokio::time::sleep(HARD_DEADLINE) => {
                eprintln!("orchestrator: the mission did not stop within {HARD_DEADLINE:?}; exiting");
            }
        }
        hard_exit(code);
    }
}
