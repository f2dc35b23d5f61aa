//! Shutdown handlers: run in priority order (lowest first), each under its own timeout, so that one that
//! hangs cannot keep the others from running or the process from exiting in time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

type Action = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Handler {
    priority: u8,
    name: &'static str,
    timeout: Duration,
    action: Action,
}

/// The handlers to run when the orchestrator stops.
#[derive(Default)]
pub struct Shutdown {
    handlers: Vec<Handler>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.handlers
                    .iter()
                    .map(|handler| (handler.priority, handler.name)),
            )
            .finish()
    }
}

/// How one handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerReport {
    /// Its name.
    pub name: &'static str,
    /// Whether it finished within its timeout.
    pub finished: bool,
    /// How long it ran.
    pub took: Duration,
}

impl Shutdown {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler: `action` runs after every handler of a lower `priority` (ties in the order added),
    /// and is abandoned after `timeout`.
    pub fn add<F, Fut>(&mut self, priority: u8, name: &'static str, timeout: Duration, action: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers.push(Handler {
            priority,
            name,
            timeout,
            action: Box::new(move || Box::pin(action())),
        });
    }

    /// Runs every handler in order; returns how each ended.
    pub async fn run(mut self) -> Vec<HandlerReport> {
        // A stable sort keeps the order of addition among equal priorities.
        self.handlers.sort_by_key(|handler| handler.priority);
        let mut reports = Vec::with_capacity(self.handlers.len());
        for handler in self.handlers {
            let started = Instant::now();
            let finished = tokio::time::timeout(handler.timeout, (handler.action)())
                .await
                .is_ok();
            if !finished {
                tracing::warn!(handler = handler.name, timeout = ?handler.timeout, "a shutdown handler timed out");
            }
            reports.push(HandlerReport {
                name: handler.name,
                finished,
                took: started.elapsed(),
            });
        }
        reports
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn handlers_run_in_priority_order_and_a_hung_one_is_cut_off() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut shutdown = Shutdown::new();
        for (priority, name) in [(2, "third"), (0, "first"), (1, "second"), (2, "fourth")] {
            let order = Arc::clone(&order);
            shutdown.add(priority, name, Duration::from_secs(1), move || async move {
                order.lock().unwrap().push(name);
            });
        }
        shutdown.add(1, "hangs", Duration::from_millis(50), || {
            std::future::pending::<()>()
        });
        let started = Instant::now();
        let reports = shutdown.run().await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            *order.lock().unwrap(),
            ["first", "second", "third", "fourth"]
        );
        let names: Vec<_> = reports.iter().map(|report| report.name).collect();
        assert_eq!(names, ["first", "second", "hangs", "third", "fourth"]);
        assert!(!reports[2].finished);
        assert!(
            reports
                .iter()
                .enumerate()
                .all(|(index, report)| report.finished || index == 2)
        );
    }
}
