//! Where a size class keeps its idle buffers (temporary store: a locked stack, until the shared depot lands).

use super::Block;
use crate::sync::{Mutex, lock};

/// The idle buffers of one size class.
#[derive(Debug)]
pub(super) struct IdleStore {
    blocks: Mutex<Vec<Block>>,
}

impl IdleStore {
    pub(super) fn new(_thread_cache: usize) -> Self {
        Self {
            blocks: Mutex::new(Vec::new()),
        }
    }

    /// Takes an idle buffer, the one released last if the store can tell.
    #[inline]
    pub(super) fn pop(&self) -> Option<Block> {
        lock(&self.blocks).pop()
    }

    /// Keeps `block` for a later `pop`.
    #[inline]
    pub(super) fn push(&self, block: Block) {
        lock(&self.blocks).push(block);
    }

    /// The number of idle buffers (a moment's picture).
    pub(super) fn len(&self) -> usize {
        lock(&self.blocks).len()
    }

    /// Frees every idle buffer this store can reach now and returns how many.
    pub(super) fn trim(&self) -> usize {
        let taken = core::mem::take(&mut *lock(&self.blocks));
        taken.len()
    }
}
