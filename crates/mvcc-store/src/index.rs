//! The key index: a copy-on-write B+tree with one writer at a time and readers that take no lock.
//!
//! Leaves hold the keys in order, each with the head of its version chain ([`crate::chain`]) in an atomic
//! pointer; inner nodes hold separator keys and atomic pointers to their children. Keys and separators never
//! change once a node is published, so readers search plain sorted arrays (two or three cache lines per
//! level) and the only atomics they load are the root, child pointers and chain heads. Everything a commit
//! does to an existing key is one Release store of its chain head: no node is copied.
//!
//! Only the holder of the commit lock changes the tree (its methods take `&mut Writer` parts as proof):
//!
//! * Inserting a key copies its leaf with the key added (heads are carried over: the copy points to the same
//!   chains) and swaps the parent's pointer to the copy with one Release store; a leaf that grows past
//!   `LEAF_MAX` is split, and the parent is copied with the new separator (and so on up; the root may grow a
//!   level).
//! * Removing a key whose last version is a deletion no snapshot needs copies its leaf without it; an empty
//!   leaf leaves its parent, and a root with one child gives way to that child. Nodes are never merged: a
//!   store that shrinks keeps sparser leaves until keys come back.
//!
//! A replaced node is *retired*, not freed: a reader that loaded it before the swap finds in it every key and
//! every chain head its snapshot needs (the copy was made from it, and later versions are newer than that
//! snapshot). It is freed once every pinned version is above the last version assigned when it was replaced
//! (the same rule as in [`crate::gc`]'s docs: see `Pins::watermark`). A reader that pins a newer version
//! synchronises with the publication of a commit made after the swap, so it loads the copy.
//!
//! Deviation from the textbook B+tree: no sibling links (a cursor that leaves a leaf descends again from the
//! root to the next one, an `O(log n)` step every `LEAF_MAX` keys), so a replaced leaf never has to be
//! unlinked from a neighbour, and no merging on removal.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ptr;

use arrayvec::ArrayVec;
use crossbeam_utils::CachePadded;

use crate::chain::VersionNode;
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// The most entries in a leaf. Loom models use 2, so that a third key splits a leaf.
pub(crate) const LEAF_MAX: usize = if cfg!(loom) { 2 } else { 32 };
/// The most children of an inner node (wider than leaves: inner nodes are few and hot, and a wider one
/// saves a level). Loom models use 3.
pub(crate) const INNER_MAX: usize = if cfg!(loom) { 3 } else { 64 };

/// A key and the head of its version chain.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    /// The newest version of the key, or null before one is installed. Carried over (same pointer) when the
    /// leaf is copied; only the copy in the current leaf is ever stored to.
    head: AtomicPtr<VersionNode<V>>,
}

impl<K, V> Entry<K, V> {
    /// The head of the key's version chain.
    #[inline]
    pub(crate) fn newest(&self) -> *mut VersionNode<V> {
        // Acquire: pairs with the Release store in `Index::push_version`, so the newest version's fields
        // (and the older versions it links to) are visible.
        self.head.load(Ordering::Acquire)
    }

    /// The same key and chain, for a copy of the leaf. Writer only.
    fn carried(&self) -> Self
    where
        K: Clone,
    {
        Entry {
            key: self.key.clone(),
            // Relaxed: the writer reads its own stores; readers of the copy are published to by the Release
            // store that links the copy in.
            head: AtomicPtr::new(self.head.load(Ordering::Relaxed)),
        }
    }
}

/// A leaf: entries sorted by key, never changed once published (but for chain heads). The entries are held
/// inline, so a lookup reaches them without another pointer.
pub(crate) struct Leaf<K, V> {
    entries: ArrayVec<Entry<K, V>, LEAF_MAX>,
    /// Set by the writer when the leaf is replaced by a copy; read by the writer only (a transaction's
    /// recorded read is then looked up again by key).
    replaced: AtomicBool,
}

impl<K, V> Leaf<K, V> {
    /// Whether the writer has replaced this leaf (read under the commit lock).
    #[inline]
    pub(crate) fn is_replaced(&self) -> bool {
        // Relaxed: written and read only by holders of the commit lock, which orders them.
        self.replaced.load(Ordering::Relaxed)
    }
}

/// An inner node: `children.len() - 1` separators; child `i` holds the keys `k` with
/// `separators[i - 1] <= k < separators[i]`.
struct Inner<K, V> {
    separators: ArrayVec<K, { INNER_MAX - 1 }>,
    children: ArrayVec<AtomicPtr<Node<K, V>>, INNER_MAX>,
}

/// A node, seen through its kind.
enum Body<'a, K, V> {
    Leaf(&'a Leaf<K, V>),
    Inner(&'a Inner<K, V>),
}

/// The header every node starts with; a `*mut Node` points to a [`LeafNode`] or an [`InnerNode`], told apart
/// by `is_leaf`. Leaves and inner nodes are allocated at their own sizes (an enum would make every leaf as
/// large as an inner node), and always handled through raw pointers whose provenance covers the whole node.
#[repr(C)]
pub(crate) struct Node<K, V> {
    is_leaf: bool,
    /// Under loom a reclaimed node is marked and leaked instead of freed, and readers check the mark.
    #[cfg(loom)]
    reclaimed: AtomicBool,
    _types: PhantomData<fn() -> (K, V)>,
}

#[repr(C)]
struct LeafNode<K, V> {
    header: Node<K, V>,
    leaf: Leaf<K, V>,
}

#[repr(C)]
struct InnerNode<K, V> {
    header: Node<K, V>,
    inner: Inner<K, V>,
}

impl<K, V> Node<K, V> {
    fn header(is_leaf: bool) -> Self {
        Node {
            is_leaf,
            #[cfg(loom)]
            reclaimed: AtomicBool::new(false),
            _types: PhantomData,
        }
    }

    fn leaf(entries: Vec<Entry<K, V>>) -> *mut Self {
        debug_assert!(entries.len() <= LEAF_MAX);
        let node = Box::new(LeafNode {
            header: Self::header(true),
            leaf: Leaf {
                entries: entries.into_iter().collect(),
                replaced: AtomicBool::new(false),
            },
        });
        // `repr(C)` with the header first: a pointer to the node is a pointer to its header.
        Box::into_raw(node).cast()
    }

    fn inner(separators: Vec<K>, children: Vec<*mut Node<K, V>>) -> *mut Self {
        debug_assert_eq!(separators.len() + 1, children.len());
        debug_assert!(children.len() <= INNER_MAX);
        let node = Box::new(InnerNode {
            header: Self::header(false),
            inner: Inner {
                separators: separators.into_iter().collect(),
                children: children.into_iter().map(AtomicPtr::new).collect(),
            },
        });
        // As in `leaf`.
        Box::into_raw(node).cast()
    }

    /// The node's contents.
    ///
    /// # Safety
    ///
    /// `node` came from `leaf` or `inner` and is alive for `'a` (the caller's pin, or the commit lock).
    #[inline]
    unsafe fn body<'a>(node: *const Self) -> Body<'a, K, V> {
        // SAFETY: `node` is alive; the kind tag says which struct it heads, and the pointer, taken from the
        // allocation, covers all of it.
        unsafe {
            #[cfg(loom)]
            (*node).check_not_reclaimed();
            if (*node).is_leaf {
                Body::Leaf(&(*node.cast::<LeafNode<K, V>>()).leaf)
            } else {
                Body::Inner(&(*node.cast::<InnerNode<K, V>>()).inner)
            }
        }
    }

    /// Frees a node that no reader can reach (not its children, not the chains of its entries).
    ///
    /// # Safety
    ///
    /// `node` came from `leaf` or `inner`, is unreachable, and nothing else frees it.
    pub(crate) unsafe fn free(node: *mut Self) {
        #[cfg(loom)]
        // SAFETY: under loom nodes are never freed, so the mark is always writable.
        unsafe {
            (*node).reclaimed.store(true, Ordering::Relaxed)
        };
        #[cfg(not(loom))]
        // SAFETY: the caller hands over the unreachable node, which is freed as the type it was allocated as.
        unsafe {
            if (*node).is_leaf {
                drop(Box::from_raw(node.cast::<LeafNode<K, V>>()));
            } else {
                drop(Box::from_raw(node.cast::<InnerNode<K, V>>()));
            }
        }
    }

    #[cfg(loom)]
    #[inline]
    fn check_not_reclaimed(&self) {
        // Relaxed: loom explores every value this load may return; a protocol that lets a reader reach a
        // reclaimed node makes some execution return `true`.
        assert!(
            !self.reclaimed.load(Ordering::Relaxed),
            "a reader reached a tree node the writer had reclaimed"
        );
    }
}

/// A place in the key order: an entry of a leaf (or the end of the leaf), and the smallest separator above
/// the leaf's keys (null: the leaf is the last one), where the next leaf starts.
pub(crate) struct Position<K, V> {
    pub(crate) leaf: *const Leaf<K, V>,
    pub(crate) index: usize,
    upper: *const K,
}

impl<K, V> Clone for Position<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Position<K, V> {}

impl<K, V> Position<K, V> {
    /// The entry at this position, or `None` at the end of its leaf.
    ///
    /// # Safety
    ///
    /// The leaf is alive (the caller's pin, or the commit lock, keeps it).
    #[inline]
    pub(crate) unsafe fn entry<'a>(self) -> Option<&'a Entry<K, V>> {
        // SAFETY: forwarded.
        let leaf: &'a Leaf<K, V> = unsafe { &*self.leaf };
        leaf.entries.get(self.index)
    }
}

/// What the writer set aside while changing the tree: nodes replaced or removed, and the chains of keys
/// removed, to be freed once no snapshot can reach them.
pub(crate) enum Retired<K, V> {
    Node(*mut Node<K, V>),
    Chain(*mut VersionNode<V>),
}

/// The tree.
pub(crate) struct Index<K, V> {
    /// Never null: an empty tree is an empty leaf. Read by every lookup, written when the root changes.
    root: CachePadded<AtomicPtr<Node<K, V>>>,
    /// The number of keys; written by inserts and removals, so kept off the root's cache line.
    len: CachePadded<AtomicUsize>,
}

// SAFETY: the index owns its nodes (keys `K`, values `Arc<V>` in the chains); it hands out `&K` and `&V` to
// any thread and moves their ownership to whichever thread frees them, so both must be `Send + Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Index<K, V> {}
// SAFETY: as above; every shared mutation goes through atomics and the single-writer discipline.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Index<K, V> {}

/// A key's leaf and entry, as `Index::find` returns them.
pub(crate) type Found<'a, K, V> = (&'a Leaf<K, V>, &'a Entry<K, V>);

/// The path from the root to a leaf: each inner node passed and the child taken.
type Path<K, V> = Vec<(*mut Node<K, V>, usize)>;

impl<K, V> Index<K, V> {
    pub(crate) fn new() -> Self {
        Index {
            root: CachePadded::new(AtomicPtr::new(Node::leaf(Vec::new()))),
            len: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// The number of keys in the tree (live or deleted ones not collected yet).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a statistic.
        self.len.load(Ordering::Relaxed)
    }

    #[inline]
    fn root(&self) -> *mut Node<K, V> {
        // Acquire: pairs with the Release stores that publish a new root (`replace`), so its contents are
        // visible.
        self.root.load(Ordering::Acquire)
    }

    /// Descends to the leaf whose range holds the keys `>= key` (`inclusive`) or `> key`, returning its
    /// first entry in that range and the separator where the next leaf starts.
    ///
    /// # Safety
    ///
    /// The caller holds a pin (or the commit lock) while it uses the position.
    #[inline]
    unsafe fn descend<Q>(&self, key: Option<&Q>, inclusive: bool) -> Position<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root();
        let mut upper: *const K = ptr::null();
        loop {
            // SAFETY: a published node, kept allocated by the caller's pin (module docs).
            match unsafe { Node::body(node) } {
                Body::Inner(inner) => {
                    // The child whose range holds `key` (for `> key`, the same one: a key equal to a
                    // separator belongs to the child on its right).
                    let child = match key {
                        None => 0,
                        Some(key) => inner
                            .separators
                            .partition_point(|separator| separator.borrow() <= key),
                    };
                    if let Some(separator) = inner.separators.get(child) {
                        upper = separator;
                    }
                    // Acquire: pairs with the Release store that linked the child (`replace`).
                    node = inner.children[child].load(Ordering::Acquire);
                }
                Body::Leaf(leaf) => {
                    let index = match key {
                        None => 0,
                        Some(key) => leaf.entries.partition_point(|entry| {
                            let entry_key = entry.key.borrow();
                            if inclusive {
                                entry_key < key
                            } else {
                                entry_key <= key
                            }
                        }),
                    };
                    return Position { leaf, index, upper };
                }
            }
        }
    }

    /// The entry of `key` and its leaf, if the key is in the tree.
    ///
    /// # Safety
    ///
    /// The caller holds a pin (or the commit lock) for as long as it uses them.
    #[inline]
    pub(crate) unsafe fn find<Q>(&self, key: &Q) -> Option<Found<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: forwarded.
        let position = unsafe { self.descend(Some(key), true) };
        // SAFETY: forwarded.
        let entry = unsafe { position.entry() }?;
        // SAFETY: forwarded.
        (entry.key.borrow() == key).then(|| (unsafe { &*position.leaf }, entry))
    }

    /// The first position whose key is inside `lower` (it may be the end of a leaf: use `settle`).
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    #[inline]
    pub(crate) unsafe fn seek<Q>(&self, lower: Bound<&Q>) -> Position<K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: forwarded.
        unsafe {
            match lower {
                Bound::Unbounded => self.descend(None, true),
                Bound::Included(key) => self.descend(Some(key), true),
                Bound::Excluded(key) => self.descend(Some(key), false),
            }
        }
    }

    /// Moves a position at the end of its leaf to the first entry of the next non-empty leaf; returns `None`
    /// at the end of the tree. A position on an entry stays.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    #[inline]
    pub(crate) unsafe fn settle(&self, mut position: Position<K, V>) -> Option<Position<K, V>>
    where
        K: Ord,
    {
        // SAFETY: forwarded.
        while unsafe { position.entry() }.is_none() {
            if position.upper.is_null() {
                return None;
            }
            // SAFETY: the separator lives in an inner node the caller's pin keeps allocated.
            position = unsafe { self.descend::<K>(Some(&*position.upper), true) };
        }
        Some(position)
    }

    /// The position after `position` (which is on an entry), settled; `None` at the end.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    #[inline]
    pub(crate) unsafe fn advance(&self, mut position: Position<K, V>) -> Option<Position<K, V>>
    where
        K: Ord,
    {
        position.index += 1;
        // SAFETY: forwarded.
        unsafe { self.settle(position) }
    }

    /// The key right before `key` and the first key at or after it, as they are now (null: none), and the
    /// entry of `key` if it is there. A serializable transaction records the pair for an absent key.
    ///
    /// # Safety
    ///
    /// As [`find`](Self::find).
    pub(crate) unsafe fn locate<Q>(&self, key: &Q) -> Located<'_, K, V>
    where
        K: Borrow<Q> + Ord,
        Q: Ord + ?Sized,
    {
        // SAFETY: forwarded.
        unsafe {
            let position = self.descend(Some(key), true);
            if let Some(entry) = position.entry()
                && entry.key.borrow() == key
            {
                return Located::Found(&*position.leaf, entry);
            }
            let leaf: &Leaf<K, V> = &*position.leaf;
            let after: *const K = if position.index > 0 {
                &leaf.entries[position.index - 1].key
            } else {
                // The key before the leaf's first: the largest key below `key` in the whole tree.
                self.last_below(key)
            };
            let before = match self.settle(position) {
                Some(next) => &next.entry().expect("settled").key as *const K,
                None => ptr::null(),
            };
            Located::Gap { after, before }
        }
    }

    /// The largest key below `key` (null: none). Used only when a leaf's first key is above `key`.
    unsafe fn last_below<Q>(&self, key: &Q) -> *const K
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root();
        let mut best: *const K = ptr::null();
        loop {
            // SAFETY: as in `descend`.
            match unsafe { Node::body(node) } {
                Body::Inner(inner) => {
                    let child = inner
                        .separators
                        .partition_point(|separator| separator.borrow() < key);
                    // The subtree left of `child` holds keys below `key`; remember where to look if the
                    // chosen subtree has none.
                    if child > 0 {
                        // Acquire: as in `descend`.
                        let left = inner.children[child - 1].load(Ordering::Acquire);
                        // SAFETY: as above.
                        let last = unsafe { Self::last_key(left) };
                        if !last.is_null() {
                            best = last;
                        }
                    }
                    // Acquire: as in `descend`.
                    node = inner.children[child].load(Ordering::Acquire);
                }
                Body::Leaf(leaf) => {
                    let index = leaf
                        .entries
                        .partition_point(|entry| entry.key.borrow() < key);
                    return if index > 0 {
                        &leaf.entries[index - 1].key
                    } else {
                        best
                    };
                }
            }
        }
    }

    /// The largest key of the subtree at `node` (null if it has none).
    unsafe fn last_key(mut node: *mut Node<K, V>) -> *const K {
        loop {
            // SAFETY: as in `descend`.
            match unsafe { Node::body(node) } {
                Body::Inner(inner) => {
                    // Acquire: as in `descend`.
                    node = inner.children[inner.children.len() - 1].load(Ordering::Acquire);
                }
                Body::Leaf(leaf) => {
                    return leaf.entries.last().map_or(ptr::null(), |entry| &entry.key);
                }
            }
        }
    }

    /// Makes `version` the newest version of `entry`'s key. Writer only.
    ///
    /// # Safety
    ///
    /// `entry` is in the current tree; `version` is a fresh node whose `older` is the key's current newest
    /// version.
    #[inline]
    pub(crate) unsafe fn push_version(entry: &Entry<K, V>, version: *mut VersionNode<V>) {
        // Release: publishes the version's fields (and, through them, the chain below) to readers' Acquire
        // load in `Entry::newest`.
        entry.head.store(version, Ordering::Release);
    }

    /// Puts back `previous` as the newest version of `entry`'s key, undoing a `push_version` whose commit
    /// never became visible. Writer only.
    ///
    /// # Safety
    ///
    /// `entry` is in the current tree and its newest version was pushed by the current, unpublished commit.
    #[inline]
    pub(crate) unsafe fn pop_version(entry: &Entry<K, V>, previous: *mut VersionNode<V>) {
        // Release: as in `push_version`; the restored head was published before.
        entry.head.store(previous, Ordering::Release);
    }

    /// The path to the leaf that holds (or would hold) `key`, in the current tree. Writer only.
    fn path_to(&self, key: &K) -> (Path<K, V>, *mut Node<K, V>)
    where
        K: Ord,
    {
        let mut path = Vec::new();
        // Relaxed (here and below): the writer reads its own stores.
        let mut node = self.root.load(Ordering::Relaxed);
        loop {
            // SAFETY: the writer reaches only nodes of the current tree, which only it frees.
            match unsafe { Node::body(node) } {
                Body::Inner(inner) => {
                    let child = inner
                        .separators
                        .partition_point(|separator| separator <= key);
                    path.push((node, child));
                    node = inner.children[child].load(Ordering::Relaxed);
                }
                Body::Leaf(_) => return (path, node),
            }
        }
    }

    /// Inserts the keys of `keys` (sorted, unique) that are not in the tree yet, with empty chains. Returns
    /// how many were inserted. Writer only; replaced nodes go to `retired`.
    pub(crate) fn insert_missing<'k>(
        &self,
        keys: impl Iterator<Item = &'k K>,
        retired: &mut Vec<Retired<K, V>>,
    ) -> usize
    where
        K: Ord + Clone + 'k,
    {
        let mut inserted = 0;
        let mut keys = keys.peekable();
        while let Some(&first) = keys.peek() {
            let (path, leaf_node) = self.path_to(first);
            // SAFETY: a leaf of the current tree (see `path_to`).
            let Body::Leaf(leaf) = (unsafe { Node::body(leaf_node) }) else {
                unreachable!("`path_to` ends at a leaf")
            };
            // Every key below the leaf's upper separator goes into this leaf, in one copy.
            let upper = Self::upper_bound(&path);
            let mut batch = Vec::new();
            while let Some(&key) = keys.peek() {
                if upper.is_some_and(|upper| key >= upper) {
                    break;
                }
                keys.next();
                if leaf
                    .entries
                    .binary_search_by(|entry| entry.key.cmp(key))
                    .is_err()
                {
                    batch.push(key);
                }
            }
            if batch.is_empty() {
                continue;
            }
            // Merge the leaf's entries (carried over) with the new keys (empty chains).
            let mut merged = Vec::with_capacity(leaf.entries.len() + batch.len());
            let mut new_keys = batch.iter().copied().peekable();
            for entry in leaf.entries.iter() {
                while let Some(key) = new_keys.next_if(|key| *key < &entry.key) {
                    merged.push(Entry {
                        key: key.clone(),
                        head: AtomicPtr::new(ptr::null_mut()),
                    });
                }
                merged.push(entry.carried());
            }
            for key in new_keys {
                merged.push(Entry {
                    key: key.clone(),
                    head: AtomicPtr::new(ptr::null_mut()),
                });
            }
            inserted += batch.len();
            self.replace_leaf(path, leaf_node, merged, retired);
        }
        // Relaxed: a statistic.
        self.len.fetch_add(inserted, Ordering::Relaxed);
        inserted
    }

    /// Removes the keys of `keys` (sorted, unique) that are in the tree; the chains of removed keys go to
    /// `retired` with the replaced nodes. Returns how many were removed. Writer only.
    pub(crate) fn remove<'k>(
        &self,
        keys: impl Iterator<Item = &'k K>,
        retired: &mut Vec<Retired<K, V>>,
    ) -> usize
    where
        K: Ord + Clone + 'k,
    {
        let mut removed = 0;
        let mut keys = keys.peekable();
        while let Some(&first) = keys.peek() {
            let (path, leaf_node) = self.path_to(first);
            // SAFETY: a leaf of the current tree (see `path_to`).
            let Body::Leaf(leaf) = (unsafe { Node::body(leaf_node) }) else {
                unreachable!("`path_to` ends at a leaf")
            };
            let upper = Self::upper_bound(&path);
            let mut kept = Vec::with_capacity(leaf.entries.len());
            let mut entries = leaf.entries.iter().peekable();
            let mut removed_here = 0;
            while let Some(&key) = keys.peek() {
                if upper.is_some_and(|upper| key >= upper) {
                    break;
                }
                keys.next();
                while let Some(entry) = entries.next_if(|entry| &entry.key < key) {
                    kept.push(entry.carried());
                }
                if let Some(entry) = entries.next_if(|entry| &entry.key == key) {
                    // Relaxed: the writer's own store.
                    retired.push(Retired::Chain(entry.head.load(Ordering::Relaxed)));
                    removed_here += 1;
                }
            }
            if removed_here == 0 {
                continue;
            }
            kept.extend(entries.map(Entry::carried));
            removed += removed_here;
            self.replace_leaf(path, leaf_node, kept, retired);
        }
        // Relaxed: a statistic.
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// The smallest separator above the leaf at the end of `path` (where the next leaf starts), if any.
    fn upper_bound(path: &Path<K, V>) -> Option<&K> {
        path.iter().rev().find_map(|&(node, child)| {
            // SAFETY: inner nodes of the current tree; the writer frees only retired ones, later.
            match unsafe { Node::body(node) } {
                Body::Inner(inner) => inner.separators.get(child),
                Body::Leaf(_) => None,
            }
        })
    }

    /// Replaces the leaf at the end of `path` with leaves holding `entries` (split as needed, or none if
    /// `entries` is empty), fixing the inner nodes above.
    fn replace_leaf(
        &self,
        path: Path<K, V>,
        old: *mut Node<K, V>,
        entries: Vec<Entry<K, V>>,
        retired: &mut Vec<Retired<K, V>>,
    ) where
        K: Clone,
    {
        // SAFETY: `old` is a leaf of the current tree; marking it replaced tells validations to look again.
        if let Body::Leaf(leaf) = unsafe { Node::body(old) } {
            // Relaxed: read only under the commit lock.
            leaf.replaced.store(true, Ordering::Relaxed);
        }
        let mut separators = Vec::new();
        let mut leaves = Vec::new();
        if entries.len() <= LEAF_MAX {
            if !entries.is_empty() || path.is_empty() {
                leaves.push(Node::leaf(entries));
            }
        } else {
            // Split into leaves about three quarters full, so that the next inserts do not split again at
            // once.
            let target = (LEAF_MAX * 3).div_ceil(4).max(1);
            let count = entries.len().div_ceil(target);
            let per_leaf = entries.len().div_ceil(count);
            let mut entries = entries.into_iter().peekable();
            while entries.peek().is_some() {
                let chunk: Vec<Entry<K, V>> = entries.by_ref().take(per_leaf).collect();
                if !leaves.is_empty() {
                    separators.push(chunk[0].key.clone());
                }
                leaves.push(Node::leaf(chunk));
            }
        }
        self.replace(path, old, separators, leaves, retired);
    }

    /// Replaces `old`, the last node of `path` (or the root), with `replacements` separated by `separators`
    /// (`replacements.len() == separators.len() + 1`, or both empty to remove `old`), copying and splitting
    /// the inner nodes above as needed, and publishing the change with one Release store of a child pointer
    /// or of the root. `old` is retired only once nothing in the tree points to it.
    fn replace(
        &self,
        mut path: Path<K, V>,
        old: *mut Node<K, V>,
        separators: Vec<K>,
        replacements: Vec<*mut Node<K, V>>,
        retired: &mut Vec<Retired<K, V>>,
    ) where
        K: Clone,
    {
        let Some((parent, child)) = path.pop() else {
            // A new root: as many levels of inner nodes as the replacements need.
            let (mut separators, mut nodes) = (separators, replacements);
            while nodes.len() > 1 {
                (separators, nodes) = Self::group(separators, nodes);
            }
            let new_root = nodes.pop().unwrap_or_else(|| Node::leaf(Vec::new()));
            // A root with one child (after removals) gives way to it.
            let new_root = Self::collapse(new_root, retired);
            // Release: publishes the new root's contents to readers' Acquire load in `root`.
            self.root.store(new_root, Ordering::Release);
            retired.push(Retired::Node(old));
            return;
        };
        // SAFETY: an inner node of the current tree.
        let Body::Inner(inner) = (unsafe { Node::body(parent) }) else {
            unreachable!("paths hold inner nodes")
        };
        if replacements.len() == 1 {
            // Release: publishes the new child's contents to readers' Acquire load of the pointer. The
            // parent is not copied: its separators do not change.
            inner.children[child].store(replacements[0], Ordering::Release);
            retired.push(Retired::Node(old));
            return;
        }
        // The parent's children and separators with `old` swapped for the replacements.
        // Relaxed: the writer reads its own stores.
        let mut children: Vec<*mut Node<K, V>> = inner
            .children
            .iter()
            .map(|link| link.load(Ordering::Relaxed))
            .collect();
        let mut parent_separators: Vec<K> = inner.separators.to_vec();
        if replacements.is_empty() {
            children.remove(child);
            if !parent_separators.is_empty() {
                parent_separators.remove(child.saturating_sub(1).min(parent_separators.len() - 1));
            }
        } else {
            children.splice(child..=child, replacements);
            parent_separators.splice(child..child, separators);
        }
        let (separators, replacements) = if children.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            Self::group(parent_separators, children)
        };
        // `old` is reachable only through `parent`, which the call below replaces and retires.
        retired.push(Retired::Node(old));
        self.replace(path, parent, separators, replacements, retired);
    }

    /// Groups `children` (separated by `separators`) into inner nodes of at most `INNER_MAX` children, about
    /// three quarters full when there is more than one; returns the separators between the new nodes (they
    /// move up a level) and the nodes.
    fn group(separators: Vec<K>, children: Vec<*mut Node<K, V>>) -> (Vec<K>, Vec<*mut Node<K, V>>) {
        debug_assert_eq!(separators.len() + 1, children.len());
        if children.len() <= INNER_MAX {
            return (Vec::new(), vec![Node::inner(separators, children)]);
        }
        let target = (INNER_MAX * 3).div_ceil(4).max(2);
        let count = children.len().div_ceil(target);
        let per_node = children.len().div_ceil(count);
        let mut up = Vec::new();
        let mut nodes = Vec::new();
        let mut children = children.into_iter().peekable();
        let mut separators = separators.into_iter();
        while children.peek().is_some() {
            let chunk: Vec<_> = children.by_ref().take(per_node).collect();
            let inside: Vec<K> = separators.by_ref().take(chunk.len() - 1).collect();
            nodes.push(Node::inner(inside, chunk));
            if let Some(separator) = separators.next() {
                up.push(separator);
            }
        }
        (up, nodes)
    }

    /// Returns `node`, or, while it is an inner node with one child, that child (retiring the wrapper).
    fn collapse(mut node: *mut Node<K, V>, retired: &mut Vec<Retired<K, V>>) -> *mut Node<K, V> {
        loop {
            // SAFETY: a node the writer just built or took from the current tree.
            match unsafe { Node::body(node) } {
                Body::Inner(inner) if inner.children.len() == 1 => {
                    // Relaxed: the writer's own store.
                    let child = inner.children[0].load(Ordering::Relaxed);
                    retired.push(Retired::Node(node));
                    node = child;
                }
                _ => return node,
            }
        }
    }

    /// Frees every node and chain of the current tree. Only the owner of the index calls this, when no
    /// reader is left.
    ///
    /// # Safety
    ///
    /// No reader or writer uses the index any more; retired nodes are freed elsewhere.
    pub(crate) unsafe fn free_all(&mut self) -> usize {
        let mut freed_versions = 0;
        let mut stack = vec![self.root.swap(Node::leaf(Vec::new()), Ordering::Relaxed)];
        while let Some(node) = stack.pop() {
            // SAFETY: exclusive access; each node of the current tree is reached once.
            unsafe {
                match Node::body(node) {
                    Body::Inner(inner) => {
                        stack.extend(
                            inner
                                .children
                                .iter()
                                .map(|child| child.load(Ordering::Relaxed)),
                        );
                    }
                    Body::Leaf(leaf) => {
                        for entry in leaf.entries.iter() {
                            freed_versions +=
                                crate::chain::free_chain(entry.head.load(Ordering::Relaxed));
                        }
                    }
                }
                Node::free(node);
            }
        }
        freed_versions
    }
}

impl<K, V> Drop for Index<K, V> {
    fn drop(&mut self) {
        // Only the empty leaf `free_all` left (or the tree, if it never ran: then its chains leak, which the
        // store never lets happen).
        // SAFETY: `&mut self`; the root is the last node.
        unsafe { Node::free(self.root.load(Ordering::Relaxed)) };
    }
}

/// What [`Index::locate`] found.
pub(crate) enum Located<'a, K, V> {
    Found(&'a Leaf<K, V>, &'a Entry<K, V>),
    /// The key is absent; it would sit between these keys (null: the start or the end of the index).
    Gap {
        after: *const K,
        before: *const K,
    },
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
        // SAFETY: single-threaded test; retired nodes are freed only at the end.
        unsafe {
            let mut position = index.settle(index.seek(Bound::Unbounded));
            while let Some(at) = position {
                keys.push(at.entry().unwrap().key);
                position = index.advance(at);
            }
        }
        keys
    }

    fn free(retired: Vec<Retired<u32, ()>>) {
        for item in retired {
            if let Retired::Node(node) = item {
                // SAFETY: single-threaded test: no reader is left.
                unsafe { Node::free(node) };
            }
        }
    }

    fn check(index: &Index<u32, ()>, model: &BTreeSet<u32>, limit: u32) {
        assert_eq!(index.len(), model.len());
        assert_eq!(
            keys_in_order(index),
            model.iter().copied().collect::<Vec<_>>()
        );
        // SAFETY: single-threaded test.
        unsafe {
            for probe in 0..limit {
                assert_eq!(
                    index.find(&probe).is_some(),
                    model.contains(&probe),
                    "find {probe}"
                );
                let at_or_after = index.settle(index.seek(Bound::Included(&probe)));
                assert_eq!(
                    at_or_after.map(|at| at.entry().unwrap().key),
                    model.range(probe..).next().copied(),
                    "seek {probe}"
                );
                let after = index.settle(index.seek(Bound::Excluded(&probe)));
                assert_eq!(
                    after.map(|at| at.entry().unwrap().key),
                    model.range(probe + 1..).next().copied(),
                    "seek after {probe}"
                );
                match index.locate(&probe) {
                    Located::Found(_, entry) => assert_eq!(entry.key, probe),
                    Located::Gap { after, before } => {
                        assert!(!model.contains(&probe));
                        assert_eq!(
                            after.as_ref().copied(),
                            model.range(..probe).next_back().copied()
                        );
                        assert_eq!(
                            before.as_ref().copied(),
                            model.range(probe..).next().copied()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn inserts_and_removals_in_batches_agree_with_a_set() {
        let count = if cfg!(miri) { 150 } else { 5000 };
        let index = Index::<u32, ()>::new();
        let mut retired = Vec::new();
        let mut model = BTreeSet::new();
        // One key at a time, in a scrambled order: every split path.
        for key in scrambled(count) {
            let key = key * 2;
            assert_eq!(index.insert_missing([key].iter(), &mut retired), 1);
            assert_eq!(
                index.insert_missing([key].iter(), &mut retired),
                0,
                "a second insert finds the key"
            );
            model.insert(key);
        }
        check(&index, &model, count * 2 + 2);
        // A sorted batch spanning many leaves, half of it already present.
        let batch: Vec<u32> = (0..count).map(|key| key * 2 + key % 2).collect();
        let added = index.insert_missing(batch.iter(), &mut retired);
        assert_eq!(
            added,
            batch.iter().filter(|key| !model.contains(key)).count()
        );
        model.extend(batch);
        check(&index, &model, count * 2 + 2);
        // Remove two thirds in batches, then everything.
        let mut doomed: Vec<u32> = model.iter().copied().filter(|key| key % 3 != 0).collect();
        doomed.sort_unstable();
        for chunk in doomed.chunks(97) {
            index.remove(chunk.iter(), &mut retired);
            for key in chunk {
                model.remove(key);
            }
            check(&index, &model, 0);
        }
        check(&index, &model, count * 2 + 2);
        let all: Vec<u32> = model.iter().copied().collect();
        assert_eq!(index.remove(all.iter(), &mut retired), all.len());
        model.clear();
        check(&index, &model, 50);
        // The tree grows again from empty.
        index.insert_missing(
            [3, 1, 2].iter().collect::<BTreeSet<_>>().into_iter(),
            &mut retired,
        );
        assert_eq!(keys_in_order(&index), vec![1, 2, 3]);
        free(retired);
        let mut index = index;
        // SAFETY: single-threaded; nothing else refers to the tree.
        unsafe { index.free_all() };
    }

    #[test]
    fn a_replaced_leaf_still_holds_what_it_held() {
        let index = Index::<u32, ()>::new();
        let mut retired = Vec::new();
        index.insert_missing([1, 2].iter(), &mut retired);
        // SAFETY: single-threaded; retired nodes are freed at the end.
        unsafe {
            let (old_leaf, _) = index.find(&1).unwrap();
            let old_leaf: *const Leaf<u32, ()> = old_leaf;
            index.insert_missing([3].iter(), &mut retired);
            assert!((*old_leaf).is_replaced());
            let keys: Vec<u32> = (*old_leaf).entries.iter().map(|entry| entry.key).collect();
            assert_eq!(keys, vec![1, 2], "a reader on the old leaf sees its keys");
            assert!(index.find(&3).is_some());
        }
        free(retired);
        let mut index = index;
        // SAFETY: as above.
        unsafe { index.free_all() };
    }
}
