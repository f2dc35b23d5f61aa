//! Stage 4, `schedule`: ready tasks go to worker slots.
//!
//! Ready tasks enter a shared [`ws_deque::Injector`] in priority order. Each slot owns a
//! [`ws_deque::Worker`]: it runs what its own deque holds, refills it by taking a batch from the injector,
//! and when both are empty steals from the other slots' deques, so a slot that finishes early takes work a
//! busy slot had queued. How many slots run at once follows a [`circuit::AdaptiveLimit`]: a task that fails
//! because OpenCode or the model failed cuts the limit, successes grow it back to the slot count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use circuit::AdaptiveLimit;
use tokio::sync::Notify;
use ws_deque::{Injector, Steal, Stealer, Worker};

/// Where a slot found a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Its own deque.
    Local,
    /// The shared queue of ready tasks.
    Injector,
    /// Another slot's deque.
    Stolen,
}

/// What running a task told the scheduler about the server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The task ran (whatever its outcome): the server coped.
    Ok,
    /// OpenCode or the model failed under it: fewer slots should run at once.
    Overloaded,
}

/// Counts of where tasks came from, for the summary.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    /// Tasks a slot took from its own deque.
    pub local: AtomicU64,
    /// Tasks taken from the injector.
    pub injected: AtomicU64,
    /// Tasks stolen from another slot.
    pub stolen: AtomicU64,
}

/// The queues of ready tasks.
#[derive(Debug)]
pub struct Queue {
    injector: Injector<String>,
    stealers: Vec<Stealer<String>>,
    workers: std::sync::Mutex<Vec<Option<Worker<String>>>>,
    wake: Notify,
    closed: AtomicBool,
    stats: ScheduleStats,
}

impl Queue {
    /// Queues for `slots` worker slots.
    pub fn new(slots: usize) -> Arc<Self> {
        let workers: Vec<Worker<String>> = (0..slots.max(1)).map(|_| Worker::new_fifo()).collect();
        let stealers = workers.iter().map(Worker::stealer).collect();
        Arc::new(Self {
            injector: Injector::new(),
            stealers,
            workers: std::sync::Mutex::new(workers.into_iter().map(Some).collect()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            stats: ScheduleStats::default(),
        })
    }

    /// Queues ready tasks (in the order given: highest priority first) and wakes idle slots.
    pub fn push(&self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.injector.push(id);
        }
        self.wake.notify_waiters();
    }

    /// No more tasks will come: slots end once the queues are empty.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.closed.load(Ordering::Acquire)
    }

    /// Where tasks came from so far.
    pub fn stats(&self) -> &ScheduleStats {
        &self.stats
    }

    fn find(&self, slot: usize, local: &Worker<String>) -> Option<(String, Source)> {
        if let Some(id) = local.pop() {
            return Some((id, Source::Local));
        }
        loop {
            let mut retry = false;
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(id) => return Some((id, Source::Injector)),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            // Start with the next slot, so thieves spread over their victims.
            let count = self.stealers.len();
            for offset in 1..count {
                match self.stealers[(slot + offset) % count].steal() {
                    Steal::Success(id) => return Some((id, Source::Stolen)),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Runs `slots` worker slots until the queue is closed and empty: each slot takes tasks as described
    /// in the module docs and awaits `run(slot, id)` under a token of `limit`.
    ///
    /// # Panics
    ///
    /// If called twice on one queue (each slot's deque has one owner).
    pub async fn run<F, Fut>(self: &Arc<Self>, limit: Arc<AdaptiveLimit>, run: F)
    where
        F: Fn(usize, String, Source) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Load> + Send + 'static,
    {
        let run = Arc::new(run);
        let workers: Vec<Worker<String>> = self
            .workers
            .lock()
            .expect("no panic holds the lock")
            .iter_mut()
            .map(|worker| worker.take().expect("a queue runs its slots once"))
            .collect();
        let mut handles = Vec::new();
        for (slot, local) in workers.into_iter().enumerate() {
            let queue = Arc::clone(self);
            let limit = Arc::clone(&limit);
            let run = Arc::clone(&run);
            handles.push(tokio::spawn(async move {
                loop {
                    // Register for a wake-up before looking, so a push between the look and the wait is
                    // not missed.
                    let woken = queue.wake.notified();
                    let found = queue.find(slot, &local);
                    let Some((id, source)) = found else {
                        if queue.closed.load(Ordering::Acquire) {
                            return;
                        }
                        woken.await;
                        continue;
                    };
                    let counter = match source {
                        Source::Local => &queue.stats.local,
                        Source::Injector => &queue.stats.injected,
                        Source::Stolen => &queue.stats.stolen,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let token = limit.acquire_owned_async().await;
                    let started = Instant::now();
                    match run(slot, id, source).await {
                        Load::Ok => token.success(started.elapsed()),
                        Load::Overloaded => token.dropped(),
                    }
                }
            }));
        }
        for handle in handles {
            if let Err(error) = handle.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn limit(slots: u32) -> Arc<AdaptiveLimit> {
        Arc::new(
            AdaptiveLimit::aimd()
                .initial_limit(slots)
                .max_limit(slots)
                .build()
                .unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_task_runs_exactly_once_and_idle_slots_steal() {
        let queue = Queue::new(4);
        queue.push((0..64).map(|n| format!("T{n}")));
        queue.close();
        let runs = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
        let slots = Arc::new(Mutex::new(BTreeMap::<usize, usize>::new()));
        {
            let runs = Arc::clone(&runs);
            let slots = Arc::clone(&slots);
            queue
                .run(limit(4), move |slot, id, _| {
                    *runs.lock().unwrap().entry(id).or_default() += 1;
                    *slots.lock().unwrap().entry(slot).or_default() += 1;
                    async move {
                        // Slot 0 is slow: the others must take what it queued.
                        let pause = if slot == 0 { 20 } else { 1 };
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        Load::Ok
                    }
                })
                .await;
        }
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 64);
        assert!(runs.values().all(|&count| count == 1), "{runs:?}");
        let stats = queue.stats();
        let total = stats.local.load(Ordering::Relaxed)
            + stats.injected.load(Ordering::Relaxed)
            + stats.stolen.load(Ordering::Relaxed);
        assert_eq!(total, 64);
        assert!(
            slots.lock().unwrap().len() > 1,
            "more than one slot ran tasks"
        );
        // Slot 0 took a batch into its own deque and runs slowly: the others took from it.
        assert!(
            stats.stolen.load(Ordering::Relaxed) > 0,
            "idle slots stole from the slow one"
        );
    }

    #[tokio::test]
    async fn a_slot_waits_for_pushed_work_until_closed() {
        let queue = Queue::new(2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let runner = {
            let queue = Arc::clone(&queue);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                queue
                    .run(limit(2), move |_, id, _| {
                        seen.lock().unwrap().push(id);
                        async { Load::Ok }
                    })
                    .await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.push(["a".to_string()]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.push(["b".to_string(), "c".to_string()]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.close();
        tokio::time::timeout(Duration::from_secs(5), runner)
            .await
            .expect("the slots end once closed")
            .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overload_cuts_how_many_slots_run_at_once() {
        let queue = Queue::new(4);
        queue.push((0..40).map(|n| n.to_string()));
        queue.close();
        let limit = limit(4);
        queue
            .run(Arc::clone(&limit), |_, _, _| async { Load::Overloaded })
            .await;
        assert!(limit.limit() < 4, "limit {}", limit.limit());
    }
}
