//! Pinning for thieves of the growable deque: a buffer the owner replaced is freed only after every thief
//! that could have loaded it has finished.

/// Holds off the freeing of retired buffers while it lives.
#[cfg(not(loom))]
pub(crate) type Guard = crossbeam_epoch::Guard;

/// Under loom retired buffers live until the queue drops, so there is nothing to pin.
#[cfg(loom)]
pub(crate) struct Guard;

/// Pins the current thread.
#[inline]
pub(crate) fn pin() -> Guard {
    #[cfg(not(loom))]
    {
        crossbeam_epoch::pin()
    }
    #[cfg(loom)]
    {
        Guard
    }
}
