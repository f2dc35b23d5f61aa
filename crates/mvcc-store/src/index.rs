//! The key index: a skip list (Pugh, "Skip Lists: A Probabilistic Alternative to Balanced Trees", CACM 1990)
//! with one writer at a time and any number of readers that take no lock.
//!
//! Each node holds a key, the head of the key's version chain ([`crate::chain`]) and a tower of forward
//! links, allocated inline after the node (one allocation per key). Readers search and iterate with Acquire
//! loads and never write. All changes — inserting a key, unlinking a key whose last version is a deletion no
//! snapshot needs — are made by the holder of the store's commit lock; the index's writer methods take the
//! lock's [`WriterRng`] as proof.
//!
//! Deviation from the lock-free skip lists of Fraser or of crossbeam-skiplist: with one writer there are no
//! concurrent inserts to lose, so links need no mark bits and no CAS. An unlinked node keeps its own links,
//! so a reader standing on it still walks on to live nodes; it is freed only once no snapshot that could
//! have reached it remains (version-based reclamation in [`crate::gc`], no epoch).

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::cmp::Ordering as CmpOrdering;
use std::ops::Bound;
use std::ptr::{self, addr_of, addr_of_mut};

use crate::chain::VersionNode;
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// The tallest tower. With a quarter of the nodes reaching each next level, 16 levels index 4^16 (about
/// 4 · 10^9) keys at the expected cost; loom models use 2 so that a handful of keys reach the top.
pub(crate) const MAX_HEIGHT: usize = if cfg!(loom) { 2 } else { 16 };

/// A link: the pointer from one tower level to the next node at that level.
type Link<K, V> = AtomicPtr<KeyNode<K, V>>;

/// A key, the head of its version chain and its tower. The tower's links follow the struct in the same
/// allocation (`height` of them, starting at the `tower` field), so a node is only ever handled through a raw
/// pointer whose provenance covers the whole allocation.
#[repr(C)]
pub(crate) struct KeyNode<K, V> {
    pub(crate) key: K,
    /// The newest version of the key (the head of its chain), or null before the first one is installed.
    newest: AtomicPtr<VersionNode<V>>,
    /// Set by the writer when it unlinks the node from the index; read by the writer only.
    unlinked: AtomicBool,
    /// The number of links in the tower, 1..=MAX_HEIGHT.
    height: usize,
    /// Under loom a reclaimed node is marked and leaked instead of freed (see `VersionNode`).
    #[cfg(loom)]
    reclaimed: AtomicBool,
    tower: [Link<K, V>; 0],
}

impl<K, V> KeyNode<K, V> {
    fn layout(height: usize) -> Layout {
        let links =
            Layout::array::<Link<K, V>>(height).expect("a tower of at most MAX_HEIGHT links");
        Layout::new::<Self>()
            .extend(links)
            .expect("a node with its tower fits in memory")
            .0
            .pad_to_align()
    }

    /// Allocates a node for `key` with an empty chain and a tower of `height` null links.
    fn allocate(key: K, height: usize) -> *mut Self {
        debug_assert!((1..=MAX_HEIGHT).contains(&height));
        let layout = Self::layout(height);
        // SAFETY: the layout has a non-zero size (it holds at least one link).
        let node = unsafe { alloc::alloc(layout) }.cast::<Self>();
        if node.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: `node` is a fresh allocation of `layout`, which holds the struct followed by `height`
        // links; each field and link is written once through raw pointers, before any reference to the
        // node exists.
        unsafe {
            addr_of_mut!((*node).key).write(key);
            addr_of_mut!((*node).newest).write(AtomicPtr::new(ptr::null_mut()));
            addr_of_mut!((*node).unlinked).write(AtomicBool::new(false));
            addr_of_mut!((*node).height).write(height);
            #[cfg(loom)]
            addr_of_mut!((*node).reclaimed).write(AtomicBool::new(false));
            let tower = addr_of_mut!((*node).tower).cast::<Link<K, V>>();
            for level in 0..height {
                tower.add(level).write(AtomicPtr::new(ptr::null_mut()));
            }
        }
        node
    }

    /// Frees a node allocated by [`allocate`](Self::allocate) (not its chain).
    ///
    /// # Safety
    ///
    /// No thread can reach `node` any more, and nothing else frees it.
    pub(crate) unsafe fn free(node: *mut Self) {
        #[cfg(loom)]
        {
            // Marked and leaked: a reader that could still reach it fails its check (see `VersionNode`).
            // SAFETY: the node is still allocated (it is never freed under loom).
            unsafe { (*node).reclaimed.store(true, Ordering::Relaxed) };
        }
        #[cfg(not(loom))]
        // SAFETY: the caller owns the unreachable node; its fields and links are initialised (by `allocate`)
        // and dropped once, then the allocation is returned with the layout it was made with.
        unsafe {
            let height = (*node).height;
            ptr::drop_in_place(addr_of_mut!((*node).key));
            ptr::drop_in_place(addr_of_mut!((*node).newest));
            ptr::drop_in_place(addr_of_mut!((*node).unlinked));
            let tower = addr_of_mut!((*node).tower).cast::<Link<K, V>>();
            for level in 0..height {
                ptr::drop_in_place(tower.add(level));
            }
            alloc::dealloc(node.cast::<u8>(), Self::layout(height));
        }
    }

    /// The first link of `node`'s tower.
    ///
    /// # Safety
    ///
    /// `node` points to a live node (allocated by `allocate`, not yet freed).
    #[inline]
    unsafe fn tower(node: *const Self) -> *const Link<K, V> {
        // SAFETY: `node` is live; `addr_of!` makes no reference, so the pointer keeps the provenance of the
        // whole allocation, which the links beyond the struct need.
        unsafe { addr_of!((*node).tower).cast::<Link<K, V>>() }
    }

    /// The head of the key's version chain.
    #[inline]
    pub(crate) fn newest(&self) -> *mut VersionNode<V> {
        // Acquire: pairs with the Release store in `push_version`, so the newest version's fields (and the
        // older versions it links to) are visible.
        self.newest.load(Ordering::Acquire)
    }

    /// Whether the writer has unlinked this node (read by the writer, under the commit lock).
    #[inline]
    pub(crate) fn is_unlinked(&self) -> bool {
        // Relaxed: written and read only by holders of the commit lock, which orders them.
        self.unlinked.load(Ordering::Relaxed)
    }

    #[cfg(loom)]
    #[inline]
    fn check_not_reclaimed(node: *const Self) {
        // SAFETY: under loom nodes are never freed, so the mark is always readable.
        // Relaxed: see `VersionNode::check_not_reclaimed`.
        assert!(
            !unsafe { (*node).reclaimed.load(Ordering::Relaxed) },
            "a reader reached a key node the writer had reclaimed"
        );
    }
}

/// The writer's random source for tower heights, kept under the commit lock. Holding `&mut WriterRng` is the
/// proof a caller must show to change the index.
#[derive(Debug)]
pub(crate) struct WriterRng(u64);

impl WriterRng {
    pub(crate) fn new(seed: u64) -> Self {
        WriterRng(seed | 1)
    }

    /// A tower height: 1 with probability 3/4, each further level with probability 1/4.
    fn height(&mut self) -> usize {
        // xorshift64 (Marsaglia 2003): plenty for choosing heights, and one multiply-free step.
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        let height = 1 + (x.trailing_zeros() as usize) / 2;
        height.min(MAX_HEIGHT)
    }
}

/// The skip list of keys.
pub(crate) struct Index<K, V> {
    head: [Link<K, V>; MAX_HEIGHT],
    /// The number of levels in use (`1..=MAX_HEIGHT`). Readers may load a stale value: a search that starts
    /// lower than it could is slower, never wrong, since every level is a subset of the one below.
    levels: AtomicUsize,
    /// The number of linked keys.
    len: AtomicUsize,
}

// SAFETY: the index owns its nodes (keys `K`, values `Arc<V>` in the chains); it hands out `&K` and `&V` to
// any thread and moves nodes' ownership to whichever thread frees them, so both must be `Send + Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Index<K, V> {}
// SAFETY: as above; every shared mutation goes through atomics and the single-writer discipline.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Index<K, V> {}

impl<K, V> Index<K, V> {
    pub(crate) fn new() -> Self {
        Index {
            head: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            levels: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
        }
    }

    /// The number of keys linked in the index (live or deleted ones not collected yet).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a statistic.
        self.len.load(Ordering::Relaxed)
    }

    #[inline]
    fn head_tower(&self) -> *const Link<K, V> {
        self.head.as_ptr()
    }

    /// The node following `tower`'s owner at `level`.
    ///
    /// # Safety
    ///
    /// `tower` is the head's tower or a live node's, with more than `level` links.
    #[inline]
    unsafe fn next(tower: *const Link<K, V>, level: usize) -> *mut KeyNode<K, V> {
        // SAFETY: forwarded from the caller.
        let next = unsafe { (*tower.add(level)).load(Ordering::Acquire) };
        // Acquire: pairs with the Release stores that link a node in (`insert`) or past an unlinked one
        // (`unlink`), so the node's key, chain head and tower are visible.
        #[cfg(loom)]
        if !next.is_null() {
            KeyNode::check_not_reclaimed(next);
        }
        next
    }

    /// The node of `key`, or null.
    ///
    /// # Safety
    ///
    /// The caller holds a pin (or the commit lock) for as long as it uses the returned node.
    #[inline]
    pub(crate) unsafe fn find<Q>(&self, key: &Q) -> *const KeyNode<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut tower = self.head_tower();
        // Relaxed: any value in 1..=MAX_HEIGHT is a correct place to start (see `levels`).
        let mut level = self.levels.load(Ordering::Relaxed);
        while level > 0 {
            level -= 1;
            loop {
                // SAFETY: `tower` is the head's or a node reached at this level or above (so it has more than
                // `level` links), kept alive by the caller's pin.
                let next = unsafe { Self::next(tower, level) };
                if next.is_null() {
                    break;
                }
                // SAFETY: a published node, kept alive by the caller's pin.
                match unsafe { (*next).key.borrow() }.cmp(key) {
                    CmpOrdering::Less => {
                        // SAFETY: as above.
                        tower = unsafe { KeyNode::tower(next) };
                    }
                    CmpOrdering::Equal => return next,
                    CmpOrdering::Greater => break,
                }
            }
        }
        ptr::null()
    }

    /// The first node whose key is inside `lower`, or null.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    #[inline]
    pub(crate) unsafe fn seek<Q>(&self, lower: Bound<&Q>) -> *const KeyNode<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: forwarded.
        unsafe { self.seek_with_predecessor(lower).1 }
    }

    /// The first node whose key is inside `lower` (or null), and the node before it (null: none, the
    /// search started from the head). The predecessor may have been unlinked while the search passed it;
    /// its key still orders the gap.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    pub(crate) unsafe fn seek_with_predecessor<Q>(
        &self,
        lower: Bound<&Q>,
    ) -> (*const KeyNode<K, V>, *const KeyNode<K, V>)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut tower = self.head_tower();
        let mut predecessor: *const KeyNode<K, V> = ptr::null();
        // Relaxed: see `find`.
        let mut level = self.levels.load(Ordering::Relaxed);
        let mut candidate: *const KeyNode<K, V> = ptr::null();
        while level > 0 {
            level -= 1;
            loop {
                // SAFETY: as in `find`.
                let next = unsafe { Self::next(tower, level) };
                if next.is_null() {
                    candidate = next;
                    break;
                }
                // SAFETY: a published node, kept alive by the caller's pin.
                let next_key = unsafe { (*next).key.borrow() };
                let before = match lower {
                    Bound::Unbounded => false,
                    Bound::Included(bound) => next_key < bound,
                    Bound::Excluded(bound) => next_key <= bound,
                };
                if before {
                    predecessor = next;
                    // SAFETY: as above.
                    tower = unsafe { KeyNode::tower(next) };
                } else {
                    candidate = next;
                    break;
                }
            }
        }
        (predecessor, candidate)
    }

    /// The node after `node` in key order, or null.
    ///
    /// # Safety
    ///
    /// `node` is live and the caller holds a pin (or the commit lock).
    #[inline]
    pub(crate) unsafe fn successor(node: *const KeyNode<K, V>) -> *const KeyNode<K, V> {
        // SAFETY: forwarded; every node has at least one link.
        unsafe { Self::next(KeyNode::tower(node), 0) }
    }

    /// The first node, or null.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    #[inline]
    pub(crate) unsafe fn first(&self) -> *const KeyNode<K, V> {
        // SAFETY: the head has MAX_HEIGHT links.
        unsafe { Self::next(self.head_tower(), 0) }
    }

    /// Walks the towers towards `key`, filling `preds` with the last tower at each level whose node's key is
    /// below `key`, and returns the node of `key` if it is linked.
    fn search_preds<Q>(
        &self,
        key: &Q,
        preds: &mut [*const Link<K, V>; MAX_HEIGHT],
    ) -> *const KeyNode<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut tower = self.head_tower();
        let mut found = ptr::null();
        for level in (0..MAX_HEIGHT).rev() {
            loop {
                // SAFETY: the writer (the only caller) sees every live node; `tower` has more than `level`
                // links because it was reached at this level or above (or is the head's).
                let next = unsafe { Self::next(tower, level) };
                if next.is_null() {
                    break;
                }
                // SAFETY: a linked node; only the writer frees nodes.
                match unsafe { (*next).key.borrow() }.cmp(key) {
                    CmpOrdering::Less => {
                        // SAFETY: as above.
                        tower = unsafe { KeyNode::tower(next) };
                    }
                    CmpOrdering::Equal => {
                        found = next;
                        break;
                    }
                    CmpOrdering::Greater => break,
                }
            }
            preds[level] = tower;
        }
        found
    }

    /// The node of `key`, inserting one with an empty chain (and a clone of `key`) if there is none.
    /// Writer only.
    pub(crate) fn find_or_insert(&self, rng: &mut WriterRng, key: &K) -> *const KeyNode<K, V>
    where
        K: Ord + Clone,
    {
        let mut preds = [ptr::null(); MAX_HEIGHT];
        let found = self.search_preds(key, &mut preds);
        if !found.is_null() {
            return found;
        }
        let height = rng.height();
        let node = KeyNode::<K, V>::allocate(key.clone(), height);
        // SAFETY: `node` is fresh and not yet shared; `preds[level]` are live towers with more than `level`
        // links (from `search_preds`), and only the writer changes links.
        unsafe {
            let tower = KeyNode::tower(node);
            for (level, &pred) in preds.iter().enumerate().take(height) {
                // Relaxed: the writer reads its own stores.
                let successor = (*pred.add(level)).load(Ordering::Relaxed);
                (*tower.add(level)).store(successor, Ordering::Relaxed);
            }
            for (level, &pred) in preds.iter().enumerate().take(height) {
                // Release: publishes the node's key, empty chain and tower (written above) to the readers
                // whose Acquire load in `next` finds it; bottom level first, so a node is in the full list
                // before any express lane leads to it (not needed for correctness, but it keeps the skip
                // list invariant that each level is a subset of the one below at every instant).
                (*pred.add(level)).store(node, Ordering::Release);
            }
        }
        // Relaxed: `levels` only steers where searches start (see its docs).
        if self.levels.load(Ordering::Relaxed) < height {
            self.levels.store(height, Ordering::Relaxed);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        node
    }

    /// Unlinks `node` from every level. Writer only. The node stays allocated, with its links intact, until
    /// the caller frees it once no reader can stand on it.
    ///
    /// # Safety
    ///
    /// `node` is linked in this index.
    pub(crate) unsafe fn unlink(&self, node: *const KeyNode<K, V>)
    where
        K: Ord,
    {
        let mut preds = [ptr::null(); MAX_HEIGHT];
        // SAFETY: `node` is linked, hence live.
        let found = self.search_preds(unsafe { &(*node).key }, &mut preds);
        debug_assert_eq!(found, node, "unlink of a node that is not linked");
        // SAFETY: `node` is live; `preds` are live towers from `search_preds`.
        unsafe {
            let height = (*node).height;
            let tower = KeyNode::tower(node);
            for level in (0..height).rev() {
                let pred = &*preds[level].add(level);
                // Relaxed: the writer reads its own stores.
                if pred.load(Ordering::Relaxed) == node.cast_mut() {
                    let successor = (*tower.add(level)).load(Ordering::Relaxed);
                    // Release: readers that follow this link to the successor must see the successor's
                    // fields; it was published by an earlier Release of the writer, which this store carries
                    // on (a reader's Acquire of a Relaxed store would synchronise with nothing).
                    pred.store(successor, Ordering::Release);
                }
            }
            (*node).unlinked.store(true, Ordering::Relaxed);
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
    }

    /// Makes `version` the newest version of `node`'s key. Writer only.
    ///
    /// # Safety
    ///
    /// `node` is live; `version` is a fresh node whose `older` is the key's current newest version.
    #[inline]
    pub(crate) unsafe fn push_version(node: *const KeyNode<K, V>, version: *mut VersionNode<V>) {
        // Release: publishes the version's fields (and, through them, the chain below) to readers' Acquire
        // load in `newest`.
        // SAFETY: `node` is live.
        unsafe { (*node).newest.store(version, Ordering::Release) };
    }

    /// Puts back `previous` as the newest version of `node`'s key, undoing a `push_version` whose commit
    /// never became visible. Writer only.
    ///
    /// # Safety
    ///
    /// `node` is live and its newest version was pushed by the current, unpublished commit.
    pub(crate) unsafe fn pop_version(node: *const KeyNode<K, V>, previous: *mut VersionNode<V>) {
        // Release: as in `push_version`; the restored head was published before, this keeps it published
        // through the new store.
        // SAFETY: `node` is live.
        unsafe { (*node).newest.store(previous, Ordering::Release) };
    }

    /// Frees every node and chain. Only the owner of the index calls this, when no reader is left.
    ///
    /// # Safety
    ///
    /// No reader or writer uses the index any more, and unlinked nodes are freed elsewhere.
    pub(crate) unsafe fn free_all(&mut self) -> usize {
        let mut freed_versions = 0;
        // SAFETY: exclusive access; each linked node is visited once on level 0 and freed after its
        // successor pointer is read.
        unsafe {
            let mut node = self.first();
            while !node.is_null() {
                let next = Self::successor(node);
                freed_versions += crate::chain::free_chain((*node).newest.load(Ordering::Relaxed));
                KeyNode::free(node.cast_mut());
                node = next;
            }
        }
        for link in &self.head {
            link.store(ptr::null_mut(), Ordering::Relaxed);
        }
        freed_versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Keys in a scrambled order, a deterministic permutation of `0..count`.
    fn scrambled(count: u32) -> Vec<u32> {
        let mut keys: Vec<u32> = (0..count).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for index in (1..keys.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            keys.swap(index, (state % (index as u64 + 1)) as usize);
        }
        keys
    }

    fn keys_in_order(index: &Index<u32, ()>) -> Vec<u32> {
        let mut keys = Vec::new();
        // SAFETY: single-threaded test; nodes are freed only by `free_all` below.
        unsafe {
            let mut node = index.first();
            while !node.is_null() {
                keys.push((*node).key);
                node = Index::successor(node);
            }
        }
        keys
    }

    #[test]
    fn insert_find_seek_and_unlink_agree_with_a_set() {
        let count = if cfg!(miri) { 60 } else { 5000 };
        let mut index = Index::<u32, ()>::new();
        let mut rng = WriterRng::new(7);
        let mut model = BTreeSet::new();
        for key in scrambled(count) {
            let key = key * 2;
            let node = index.find_or_insert(&mut rng, &key);
            assert_eq!(
                index.find_or_insert(&mut rng, &key),
                node,
                "a second insert finds the node"
            );
            model.insert(key);
        }
        assert_eq!(index.len(), model.len());
        assert_eq!(
            keys_in_order(&index),
            model.iter().copied().collect::<Vec<_>>()
        );
        // SAFETY: single-threaded; nodes stay allocated until `free_all` (unlinked ones are freed by hand).
        unsafe {
            for probe in 0..count * 2 + 2 {
                let found = index.find(&probe);
                assert_eq!(!found.is_null(), model.contains(&probe), "find {probe}");
                let at_or_after = index.seek(Bound::Included(&probe));
                let expected = model.range(probe..).next();
                assert_eq!(
                    at_or_after.as_ref().map(|node| node.key),
                    expected.copied(),
                    "seek {probe}"
                );
                let (predecessor, after) = index.seek_with_predecessor(Bound::Excluded(&probe));
                assert_eq!(
                    after.as_ref().map(|node| node.key),
                    model.range(probe + 1..).next().copied()
                );
                assert_eq!(
                    predecessor.as_ref().map(|node| node.key),
                    model.range(..=probe).next_back().copied(),
                    "predecessor of the keys after {probe}"
                );
            }
            let mut unlinked = Vec::new();
            for key in scrambled(count).into_iter().filter(|key| key % 3 == 0) {
                let key = key * 2;
                let node = index.find(&key);
                index.unlink(node);
                assert!((*node).is_unlinked());
                assert!(index.find(&key).is_null());
                model.remove(&key);
                unlinked.push(node.cast_mut());
            }
            assert_eq!(index.len(), model.len());
            assert_eq!(
                keys_in_order(&index),
                model.iter().copied().collect::<Vec<_>>()
            );
            for node in unlinked {
                KeyNode::free(node);
            }
            index.free_all();
        }
    }

    #[test]
    fn an_unlinked_node_still_leads_to_live_nodes() {
        let mut index = Index::<u32, ()>::new();
        let mut rng = WriterRng::new(11);
        for key in 0..10 {
            index.find_or_insert(&mut rng, &key);
        }
        // SAFETY: single-threaded; the unlinked node is freed after its last use.
        unsafe {
            let five = index.find(&5);
            index.unlink(five);
            // A reader standing on 5 when it was unlinked walks on to 6.
            assert_eq!((*Index::successor(five)).key, 6);
            KeyNode::free(five.cast_mut());
            index.free_all();
        }
    }

    #[test]
    fn heights_follow_a_quarter_per_level() {
        let mut rng = WriterRng::new(3);
        let samples = if cfg!(miri) { 1_000 } else { 100_000 };
        let mut counts = [0usize; MAX_HEIGHT + 1];
        for _ in 0..samples {
            counts[rng.height()] += 1;
        }
        let ones = counts[1] as f64 / samples as f64;
        assert!(
            (0.70..0.80).contains(&ones),
            "height 1 in {ones} of the samples"
        );
        assert_eq!(counts[0], 0);
    }
}
