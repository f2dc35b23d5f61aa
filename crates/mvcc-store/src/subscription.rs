//! Subscriptions: every committed change to a range of keys, in commit order.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Version;
use crossbeam_utils::Backoff;

use crate::feed::{CommitRecord, Feed, Lookup};

/// One committed change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<K, V> {
    /// The commit that made it.
    pub version: Version,
    /// The key.
    pub key: K,
    /// The new value, or `None`: the key was deleted.
    pub value: Option<Arc<V>>,
}

/// A subscription fell behind by more than the store's history and missed changes.
///
/// The changes of versions `missed_from` up to (not including) `resumes_at` were not delivered; delivery
/// goes on from `resumes_at`. A consumer that keeps state derived from the changes should rebuild it from a
/// snapshot: take one, read the range, and drop changes at or below the snapshot's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "subscription lagged: the changes of {missed_from} up to {resumes_at} (excluded) were missed"
)]
pub struct Lagged {
    /// The first version whose changes were missed.
    pub missed_from: Version,
    /// The version delivery goes on from.
    pub resumes_at: Version,
}

/// A commit record being delivered: its changes `position..end` are the ones in range not yet delivered.
type Delivering<K, V> = (Arc<CommitRecord<K, V>>, usize, usize);

/// Whether a blocking wait should spin a little longer before it parks: a subscriber that keeps up is
/// usually woken by a commit a few microseconds away, and parking and being woken through the condition
/// variable costs about 10 µs more (measured by the `commit_to_subscriber` benchmark). The spin is
/// crossbeam's `Backoff`: a few rounds of exponentially longer spin hints, then a few `yield_now`s. Under loom
/// there is no spinning: loom must see every wait.
fn should_spin(backoff: &Backoff) -> bool {
    !cfg!(loom) && !backoff.is_completed()
}

enum Step<K, V> {
    Item(Result<Change<K, V>, Lagged>),
    Pending,
    Closed,
}

/// Every committed change to a range of keys, in commit order, each once; from
/// [`Store::subscribe`](crate::Store::subscribe).
///
/// As an [`Iterator`] it blocks until the next change; it ends (returns `None`) once the store is dropped
/// and every change it published has been delivered. [`try_next`](Self::try_next) and
/// [`next_timeout`](Self::next_timeout) do not block, or not for long; with the `stream` (or `tokio`)
/// feature, [`into_stream`](Self::into_stream) makes it an async `Stream`. A subscription never slows the
/// store down: one that falls behind by more than the store's history receives a [`Lagged`] and goes on
/// from the oldest change kept.
///
/// ```
/// use mvcc_store::Store;
///
/// let store = Store::<String, u32>::new();
/// let mut tasks = store.subscribe("task/".to_string().."task0".to_string(), None).unwrap();
/// store.put("task/1".to_string(), 1)?;
/// store.put("other".to_string(), 2)?;
/// store.delete("task/1".to_string())?;
///
/// let first = tasks.next().unwrap().unwrap();
/// assert_eq!((first.key.as_str(), first.value.as_deref()), ("task/1", Some(&1)));
/// let second = tasks.next().unwrap().unwrap();
/// assert_eq!((second.version.get(), second.value), (3, None));
/// assert!(tasks.try_next().is_none());
/// # Ok::<(), mvcc_store::CommitError<String>>(())
/// ```
pub struct Subscription<K, V> {
    feed: Arc<Feed<K, V>>,
    range: (Bound<K>, Bound<K>),
    /// The next version to look at.
    next: u64,
    /// The record being delivered, and the part of its changes left to deliver.
    current: Option<Delivering<K, V>>,
    id: u64,
    registered: bool,
}

impl<K, V> fmt::Debug for Subscription<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("delivered_through", &self.delivered_through())
            .finish_non_exhaustive()
    }
}

impl<K, V> Subscription<K, V> {
    pub(crate) fn new(feed: Arc<Feed<K, V>>, range: (Bound<K>, Bound<K>), next: u64) -> Self {
        let id = feed.subscriber_id();
        Subscription {
            feed,
            range,
            next,
            current: None,
            id,
            registered: false,
        }
    }

    /// The version through which every change has been delivered: resume with
    /// `subscribe(range, Some(version))` to go on from here with no gap and no duplicate.
    pub fn delivered_through(&self) -> Version {
        match &self.current {
            // Part of this commit's changes is still to come.
            Some((record, position, end)) if position < end => Version::new(record.version - 1),
            // Every version before `next` has been delivered in full.
            _ => Version::new(self.next - 1),
        }
    }

    /// Whether the store is gone and every change it published has been delivered.
    pub fn is_closed(&self) -> bool {
        self.current.is_none() && matches!(self.feed.lookup(self.next), Lookup::Closed)
    }
}

impl<K: Ord + Clone, V> Subscription<K, V> {
    fn step(&mut self) -> Step<K, V> {
        loop {
            if let Some((record, position, end)) = &mut self.current {
                if *position < *end {
                    let (key, value) = &record.changes[*position];
                    *position += 1;
                    return Step::Item(Ok(Change {
                        version: Version::new(record.version),
                        key: key.clone(),
                        value: value.clone(),
                    }));
                }
                self.current = None;
            }
            match self.feed.lookup(self.next) {
                Lookup::Found(record) => {
                    self.next += 1;
                    let (lower, upper) = (&self.range.0, &self.range.1);
                    let start = record.changes.partition_point(|(key, _)| match lower {
                        Bound::Included(lower) => key < lower,
                        Bound::Excluded(lower) => key <= lower,
                        Bound::Unbounded => false,
                    });
                    let end = record.changes.partition_point(|(key, _)| match upper {
                        Bound::Included(upper) => key <= upper,
                        Bound::Excluded(upper) => key < upper,
                        Bound::Unbounded => true,
                    });
                    if start < end {
                        self.current = Some((record, start, end));
                    }
                }
                Lookup::NotYet => return Step::Pending,
                Lookup::Closed => return Step::Closed,
                Lookup::Lagged(resumes_at) => {
                    let missed_from = self.next;
                    self.next = resumes_at;
                    return Step::Item(Err(Lagged {
                        missed_from: Version::new(missed_from),
                        resumes_at: Version::new(resumes_at),
                    }));
                }
            }
        }
    }

    /// The next change if one is ready now, without waiting; `None` if there is none yet (or the
    /// subscription is closed: see [`is_closed`](Self::is_closed)).
    pub fn try_next(&mut self) -> Option<Result<Change<K, V>, Lagged>> {
        match self.step() {
            Step::Item(item) => Some(item),
            Step::Pending | Step::Closed => None,
        }
    }

    /// The next change, waiting at most `timeout` for one; `None` on timeout or when closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Change<K, V>, Lagged>> {
        let deadline = Instant::now() + timeout;
        let backoff = Backoff::new();
        loop {
            match self.step() {
                Step::Item(item) => return Some(item),
                Step::Closed => return None,
                Step::Pending => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    if should_spin(&backoff) {
                        backoff.snooze();
                    } else {
                        self.feed.wait(self.next, Some(deadline));
                    }
                }
            }
        }
    }
}

impl<K: Ord + Clone, V> Iterator for Subscription<K, V> {
    type Item = Result<Change<K, V>, Lagged>;

    /// The next change, blocking until there is one; `None` once the store is dropped and everything it
    /// published has been delivered.
    fn next(&mut self) -> Option<Self::Item> {
        let backoff = Backoff::new();
        loop {
            match self.step() {
                Step::Item(item) => return Some(item),
                Step::Closed => return None,
                Step::Pending if should_spin(&backoff) => backoff.snooze(),
                Step::Pending => self.feed.wait(self.next, None),
            }
        }
    }
}

// A subscription is never pinned structurally: `poll_next` only needs `&mut self`.
impl<K, V> Unpin for Subscription<K, V> {}

impl<K, V> Drop for Subscription<K, V> {
    fn drop(&mut self) {
        if self.registered {
            self.feed.deregister(self.id);
        }
    }
}

impl<K, V> Subscription<K, V> {
    /// This subscription as an async [`futures_core::Stream`] of the same items, for any executor (feature
    /// `stream`, or `tokio`). It waits without blocking a thread; it ends when the store is dropped and
    /// every change it published has been delivered.
    #[cfg(feature = "stream")]
    pub fn into_stream(self) -> ChangeStream<K, V> {
        ChangeStream { subscription: self }
    }
}

/// A [`Subscription`] as an async [`futures_core::Stream`] (feature `stream`); from
/// [`Subscription::into_stream`].
#[cfg(feature = "stream")]
pub struct ChangeStream<K, V> {
    subscription: Subscription<K, V>,
}

#[cfg(feature = "stream")]
impl<K, V> fmt::Debug for ChangeStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeStream")
            .field("delivered_through", &self.subscription.delivered_through())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "stream")]
impl<K, V> ChangeStream<K, V> {
    /// The version through which every change has been delivered (see
    /// [`Subscription::delivered_through`]).
    pub fn delivered_through(&self) -> Version {
        self.subscription.delivered_through()
    }

    /// The blocking subscription back.
    pub fn into_inner(self) -> Subscription<K, V> {
        self.subscription
    }
}

#[cfg(feature = "stream")]
impl<K: Ord + Clone, V> futures_core::Stream for ChangeStream<K, V> {
    type Item = Result<Change<K, V>, Lagged>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut self.get_mut().subscription;
        loop {
            match this.step() {
                Step::Item(item) => return Poll::Ready(Some(item)),
                Step::Closed => return Poll::Ready(None),
                Step::Pending => {
                    this.registered = true;
                    if !this.feed.register(this.id, this.next, cx.waker()) {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}
