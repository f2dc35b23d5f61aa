//! The commit log: records appended under the commit lock, written and synced by group commit.
//!
//! A commit encodes its record into the shared buffer while it holds the commit lock, so the buffer is in
//! version order. It then waits, without the lock, until its version is durable. The first waiter to find
//! no write in progress becomes the leader: it takes the whole buffer (every commit appended so far), writes
//! it, syncs it (with `Durability::Fsync`), and publishes the last version in it to readers; the others
//! wait on a condition variable and are usually covered by the leader's write. Readers therefore never see
//! a commit that a crash could still take away. One write and one sync serve many commits.
//!
//! If a write or sync fails, the log is failed for good: the commits of that batch and every later one get
//! an error, nothing after the last durable version is ever published, and the store serves reads at that
//! version (PostgreSQL's lesson: after a failed fsync the kernel may have dropped the dirty pages, so
//! retrying could report success for data that is gone).

use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::Durability;
use super::format;
use crate::error::CommitError;
use crate::feed::Feed;
use crate::store::Journal;
use crate::sync::{self, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};

/// What the log's lock guards.
pub(crate) struct LogState {
    /// Encoded frames not yet written, in version order.
    buffer: Vec<u8>,
    /// An empty buffer with capacity, swapped in by the leader.
    spare: Vec<u8>,
    /// The last version appended to `buffer` (or written).
    buffered_through: u64,
    /// The last version written (and synced, with `Fsync`).
    pub(crate) durable_through: u64,
    /// The first version of the segment `file` appends to.
    pub(crate) segment_first: u64,
    /// Whether a leader is writing now; `file` is then out of the state, with the leader.
    writing: bool,
    /// The segment commits are appended to; `None` while a leader writes.
    pub(crate) file: Option<File>,
    failure: Option<(io::ErrorKind, String)>,
}

/// The log of a durable store.
pub(crate) struct Log<K, V> {
    pub(crate) directory: PathBuf,
    durability: Durability,
    pub(crate) state: Mutex<LogState>,
    written: Condvar,
    /// Scratch space for encoding a record before it joins the buffer (so a failed encoding leaves the
    /// buffer whole). Only used under the commit lock, so never contended.
    scratch: Mutex<Vec<u8>>,
    pub(crate) bytes_since_checkpoint: AtomicU64,
    /// Wakes the background checkpointer when the log has grown past its threshold.
    pub(crate) checkpoint_signal: Arc<super::Signal>,
    pub(crate) checkpoint_bytes: u64,
    /// Held for the whole of a checkpoint: one at a time.
    pub(crate) checkpointing: Mutex<()>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Log<K, V> {
    pub(crate) fn new(
        directory: PathBuf,
        durability: Durability,
        file: File,
        durable_through: u64,
        segment_first: u64,
        checkpoint_bytes: u64,
        checkpoint_signal: Arc<super::Signal>,
    ) -> Self {
        Log {
            directory,
            durability,
            state: Mutex::new(LogState {
                buffer: Vec::new(),
                spare: Vec::new(),
                buffered_through: durable_through,
                durable_through,
                segment_first,
                writing: false,
                file: Some(file),
                failure: None,
            }),
            written: Condvar::new(),
            scratch: Mutex::new(Vec::new()),
            bytes_since_checkpoint: AtomicU64::new(0),
            checkpoint_signal,
            checkpoint_bytes,
            checkpointing: Mutex::new(()),
            _types: PhantomData,
        }
    }

    /// Writes one batch to `file`, synced as the durability asks.
    fn write_batch(&self, file: &mut File, batch: &[u8]) -> io::Result<()> {
        file.write_all(batch)?;
        if self.durability == Durability::Fsync {
            file.sync_data()?;
        }
        Ok(())
    }

    fn failed_error(kind: io::ErrorKind, message: &str) -> io::Error {
        io::Error::new(kind, message.to_string())
    }

    /// Blocks until no leader is writing and hands the state back.
    pub(crate) fn idle_state(&self) -> MutexGuard<'_, LogState> {
        let mut state = sync::lock(&self.state);
        while state.writing {
            state = sync::wait(&self.written, state);
        }
        state
    }
}

impl<K, V> Journal<K, V> for Log<K, V>
where
    K: Serialize + Send + Sync,
    V: Serialize + Send + Sync,
{
    fn append(&self, version: u64, changes: &[(K, Option<Arc<V>>)]) -> Result<(), CommitError<K>> {
        let mut scratch = sync::lock(&self.scratch);
        scratch.clear();
        format::append_frame(&mut scratch, |out| {
            format::encode_into(out, &format::RecordRef { version, changes })
        })
        .map_err(|error| CommitError::Encode {
            message: error.to_string(),
        })?;
        let mut state = sync::lock(&self.state);
        if let Some((_, message)) = &state.failure {
            return Err(CommitError::Failed {
                reason: message.clone(),
            });
        }
        state.buffer.extend_from_slice(&scratch);
        state.buffered_through = version;
        Ok(())
    }

    fn wait_durable(&self, version: u64, feed: &Feed<K, V>) -> Result<(), CommitError<K>> {
        let mut state = sync::lock(&self.state);
        loop {
            if state.durable_through >= version {
                return Ok(());
            }
            if let Some((kind, message)) = &state.failure {
                return Err(CommitError::Log {
                    source: Self::failed_error(*kind, message),
                });
            }
            if state.writing {
                state = sync::wait(&self.written, state);
                continue;
            }
            // Lead: write everything buffered so far.
            state.writing = true;
            let spare = std::mem::take(&mut state.spare);
            let batch = std::mem::replace(&mut state.buffer, spare);
            let through = state.buffered_through;
            let mut file = state
                .file
                .take()
                .expect("the segment is in the state when no one writes");
            let batch_len = batch.len() as u64;
            drop(state);
            let outcome = self.write_batch(&mut file, &batch);
            state = sync::lock(&self.state);
            state.file = Some(file);
            state.writing = false;
            let mut spare = batch;
            spare.clear();
            state.spare = spare;
            match outcome {
                Ok(()) => {
                    state.durable_through = through;
                    feed.publish(through);
                    // Relaxed: a statistic and a trigger; the checkpointer takes the locks it needs.
                    let since = self
                        .bytes_since_checkpoint
                        .fetch_add(batch_len, Ordering::Relaxed)
                        + batch_len;
                    if since >= self.checkpoint_bytes {
                        self.checkpoint_signal.raise();
                    }
                }
                Err(error) => {
                    state.failure = Some((error.kind(), error.to_string()));
                }
            }
            self.written.notify_all();
        }
    }

    fn failure(&self) -> Option<String> {
        sync::lock(&self.state)
            .failure
            .as_ref()
            .map(|(_, message)| message.clone())
    }

    fn bytes_since_checkpoint(&self) -> u64 {
        // Relaxed: a statistic and a trigger; nothing is published through it.
        self.bytes_since_checkpoint.load(Ordering::Relaxed)
    }
}
