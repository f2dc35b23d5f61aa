//! The queue of callers waiting for a slot, in arrival order. Only ever touched under the limiter's
//! `waiters` mutex; see the parent module for the protocol around it.

use std::collections::VecDeque;
use std::task::Waker;

use crate::sync::{Arc, Condvar};

/// How to wake a waiter once it has been handed a slot.
#[derive(Debug)]
pub(super) enum Wake {
    /// An `acquire_async` future: wake its task.
    Task(Waker),
    /// A thread blocked in `acquire`: signal the condition variable it waits on.
    Thread(Arc<Condvar>),
}

impl Wake {
    pub(super) fn wake(self) {
        match self {
            Wake::Task(waker) => waker.wake(),
            Wake::Thread(condvar) => condvar.notify_one(),
        }
    }
}

/// One waiter's entry.
#[derive(Debug)]
enum Slot {
    /// Unused; its index is on the free list.
    Vacant,
    /// In the queue, not yet handed a slot.
    Waiting(Wake),
    /// Handed a slot (counted in the limiter's in-flight count) that its owner has not collected yet; the
    /// in-flight count the grant made.
    Granted(u32),
}

/// What a waiter found when it looked at its entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Status {
    /// Still queued.
    Waiting,
    /// It owns a slot now, granted when the in-flight count became this; its entry is gone.
    Granted(u32),
}

/// Waiters in arrival order, with a slab of entries so that a waiter finds its own entry in O(1).
#[derive(Debug, Default)]
pub(super) struct Waiters {
    /// Keys of the `Waiting` entries, first come first.
    queue: VecDeque<usize>,
    entries: Vec<Slot>,
    vacant: Vec<usize>,
    /// How many waiters were ever queued (for metrics).
    queued_total: u64,
}

impl Waiters {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn queued_total(&self) -> u64 {
        self.queued_total
    }

    /// Queues a new waiter at the back and returns its key.
    pub(super) fn push(&mut self, wake: Wake) -> usize {
        let key = match self.vacant.pop() {
            Some(key) => {
                self.entries[key] = Slot::Waiting(wake);
                key
            }
            None => {
                self.entries.push(Slot::Waiting(wake));
                self.entries.len() - 1
            }
        };
        self.queue.push_back(key);
        self.queued_total += 1;
        key
    }

    /// Hands a slot to the first waiter (the grant made the in-flight count `in_flight`): it leaves the queue
    /// and its entry becomes `Granted`. Returns how to wake it, or `None` if nobody waits.
    pub(super) fn grant_first(&mut self, in_flight: u32) -> Option<Wake> {
        let key = self.queue.pop_front()?;
        match std::mem::replace(&mut self.entries[key], Slot::Granted(in_flight)) {
            Slot::Waiting(wake) => Some(wake),
            other => unreachable!("queued waiter {key} was {other:?}, not waiting"),
        }
    }

    /// Looks at waiter `key`'s entry. If it was granted, the entry is freed and the caller owns the slot; if it
    /// still waits, `update` may replace how it is woken (a task polled with a different waker).
    pub(super) fn poll(&mut self, key: usize, update: Option<&Waker>) -> Status {
        match &mut self.entries[key] {
            Slot::Granted(in_flight) => {
                let in_flight = *in_flight;
                self.free(key);
                Status::Granted(in_flight)
            }
            Slot::Waiting(Wake::Task(waker)) => {
                if let Some(new) = update
                    && !waker.will_wake(new)
                {
                    waker.clone_from(new);
                }
                Status::Waiting
            }
            Slot::Waiting(Wake::Thread(_)) => Status::Waiting,
            Slot::Vacant => unreachable!("waiter {key} polled after it was freed"),
        }
    }

    /// Removes waiter `key` (its owner gave up). Returns `Granted` if it had already been handed a slot, which
    /// the caller must now release.
    pub(super) fn cancel(&mut self, key: usize) -> Status {
        match std::mem::replace(&mut self.entries[key], Slot::Vacant) {
            Slot::Granted(in_flight) => {
                self.vacant.push(key);
                Status::Granted(in_flight)
            }
            Slot::Waiting(_) => {
                // O(queue length); cancellation is the rare path and queues are short next to the cost of the
                // wait itself.
                let position = self
                    .queue
                    .iter()
                    .position(|&queued| queued == key)
                    .expect("a waiting entry is in the queue");
                self.queue.remove(position);
                self.vacant.push(key);
                Status::Waiting
            }
            Slot::Vacant => unreachable!("waiter {key} cancelled after it was freed"),
        }
    }

    fn free(&mut self, key: usize) {
        self.entries[key] = Slot::Vacant;
        self.vacant.push(key);
    }
}
