use core::fmt;
use core::iter::FromIterator;

/// The outcome of a steal: nothing to take, an item, or a lost race that is worth retrying.
///
/// `Retry` means another thief (or the owner) changed the queue while this steal was looking at it, or
/// another thief is still copying out the items it claimed. Nothing was taken; trying again is cheap.
///
/// ```
/// use ws_deque::{Steal, Worker};
///
/// let worker = Worker::new_fifo();
/// let stealer = worker.stealer();
/// assert_eq!(stealer.steal(), Steal::Empty);
/// worker.push(7);
/// assert_eq!(stealer.steal(), Steal::Success(7));
/// ```
#[must_use]
#[derive(PartialEq, Eq, Copy, Clone)]
pub enum Steal<T> {
    /// The queue was empty when it was looked at.
    Empty,
    /// An item was taken.
    Success(T),
    /// The steal lost a race and should be retried.
    Retry,
}

impl<T> Steal<T> {
    /// Returns `true` if the queue was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, Steal::Empty)
    }

    /// Returns `true` if an item was stolen.
    pub fn is_success(&self) -> bool {
        matches!(self, Steal::Success(_))
    }

    /// Returns `true` if the steal should be retried.
    pub fn is_retry(&self) -> bool {
        matches!(self, Steal::Retry)
    }

    /// Returns the stolen item, if there is one.
    ///
    /// ```
    /// use ws_deque::Steal;
    /// assert_eq!(Steal::Success(3).success(), Some(3));
    /// assert_eq!(Steal::<i32>::Retry.success(), None);
    /// ```
    pub fn success(self) -> Option<T> {
        match self {
            Steal::Success(value) => Some(value),
            _ => None,
        }
    }

    /// Returns `self` if it is a `Success`; otherwise runs `f` and returns its outcome, remembering a
    /// `Retry` from `self` if `f` finds the queue empty.
    ///
    /// This chains steal attempts from several sources:
    ///
    /// ```
    /// use ws_deque::Steal::{self, Empty, Retry, Success};
    ///
    /// assert_eq!(Success(1).or_else(|| Success(2)), Success(1));
    /// assert_eq!(Retry.or_else(|| Success(2)), Success(2));
    /// assert_eq!(Retry.or_else(|| Empty), Retry::<i32>);
    /// assert_eq!(Empty.or_else(|| Retry), Retry::<i32>);
    /// ```
    pub fn or_else<F>(self, f: F) -> Steal<T>
    where
        F: FnOnce() -> Steal<T>,
    {
        match self {
            Steal::Empty => f(),
            Steal::Success(_) => self,
            Steal::Retry => match f() {
                Steal::Empty => Steal::Retry,
                other => other,
            },
        }
    }

    /// Maps the stolen item.
    #[cfg_attr(not(target_has_atomic = "64"), allow(dead_code))] // Only the deques use it.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Steal<U> {
        match self {
            Steal::Empty => Steal::Empty,
            Steal::Success(value) => Steal::Success(f(value)),
            Steal::Retry => Steal::Retry,
        }
    }
}

impl<T> fmt::Debug for Steal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Steal::Empty => f.pad("Empty"),
            Steal::Success(_) => f.pad("Success(..)"),
            Steal::Retry => f.pad("Retry"),
        }
    }
}

/// Takes steal outcomes until the first `Success`, which it returns. Without one, the result is `Retry` if
/// any outcome was `Retry`, and `Empty` otherwise.
///
/// ```
/// use ws_deque::Steal::{self, Empty, Retry, Success};
///
/// let all: Steal<i32> = [Empty, Retry, Success(4), Success(5)].into_iter().collect();
/// assert_eq!(all, Success(4));
/// let none: Steal<i32> = [Empty, Retry, Empty].into_iter().collect();
/// assert_eq!(none, Retry);
/// ```
impl<T> FromIterator<Steal<T>> for Steal<T> {
    fn from_iter<I>(iter: I) -> Steal<T>
    where
        I: IntoIterator<Item = Steal<T>>,
    {
        let mut retry = false;
        for outcome in iter {
            match outcome {
                Steal::Empty => {}
                Steal::Success(_) => return outcome,
                Steal::Retry => retry = true,
            }
        }
        if retry { Steal::Retry } else { Steal::Empty }
    }
}
