use alloc::boxed::Box;
use core::mem::MaybeUninit;

use crate::sync::UnsafeCell;

/// A power-of-two ring of slots. It never drops what its slots hold: which slots are live is decided by the
/// queue's positions, not by the buffer.
pub(crate) struct Buffer<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: u32,
}

impl<T> Buffer<T> {
    /// Allocates a buffer of `capacity` slots, none of them initialized.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two (a bug in the caller: capacities are rounded before this).
    pub(crate) fn alloc(capacity: u32) -> Box<Self> {
        assert!(
            capacity.is_power_of_two(),
            "buffer capacity {capacity} is not a power of two"
        );
        let slots = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        Box::new(Self {
            slots,
            mask: capacity - 1,
        })
    }

    /// The number of slots.
    #[inline]
    pub(crate) fn capacity(&self) -> u32 {
        self.mask + 1
    }

    #[inline]
    fn slot(&self, position: u32) -> &UnsafeCell<MaybeUninit<T>> {
        let index = (position & self.mask) as usize;
        debug_assert!(index < self.slots.len());
        // SAFETY: `alloc` made `mask + 1` slots, so a masked index is in bounds (the compiler cannot see
        // that the length and the mask agree, and would check on every steal).
        unsafe { self.slots.get_unchecked(index) }
    }

    /// A copy of the slot pointer and mask, for the owner to keep at hand.
    #[inline]
    pub(crate) fn slots(&self) -> Slots<T> {
        Slots {
            first: self.slots.as_ptr(),
            mask: self.mask,
        }
    }

    /// Moves the item out of the slot at `position`.
    ///
    /// # Safety
    ///
    /// The slot holds an initialized item that the caller has claimed (nobody else reads it as an item, so it
    /// is moved out once) and that nobody writes while this runs.
    #[inline]
    pub(crate) unsafe fn read(&self, position: u32) -> T {
        // SAFETY: the caller guarantees the slot is initialized, claimed by it, and not being written.
        self.slot(position)
            .with(|slot| unsafe { slot.read().assume_init() })
    }

    /// Copies the bits of the slot at `position` of `self` into the same position of `into`, as
    /// `MaybeUninit` (so nothing is duplicated as far as ownership goes: the positions decide that).
    ///
    /// # Safety
    ///
    /// Nobody writes the slot of `self` while this runs, and nobody reads or writes the slot of `into`.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) unsafe fn copy_to(&self, into: &Self, position: u32) {
        // SAFETY: the source slot is only read (a thief may read it at the same time, which is no race); the
        // caller guarantees nobody touches the destination slot.
        let bits = self.slot(position).with(|slot| unsafe { slot.read() });
        // SAFETY: as above, the destination slot is ours alone.
        into.slot(position)
            .with_mut(|slot| unsafe { slot.write(bits) });
    }
}

impl<T> core::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Buffer")
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// The slot pointer and mask of a [`Buffer`], copied out so the owner's push and pop index the ring without
/// following the buffer pointer. Valid while that buffer is.
pub(crate) struct Slots<T> {
    first: *const UnsafeCell<MaybeUninit<T>>,
    mask: u32,
}

impl<T> Clone for Slots<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Slots<T> {}

impl<T> Slots<T> {
    /// The number of slots.
    #[inline]
    pub(crate) fn capacity(self) -> u32 {
        self.mask + 1
    }

    /// # Safety
    ///
    /// The buffer these slots were copied from is alive.
    #[inline]
    unsafe fn slot<'a>(self, position: u32) -> &'a UnsafeCell<MaybeUninit<T>> {
        // SAFETY: the mask keeps the index within the buffer's `mask + 1` slots, and the caller guarantees the
        // buffer is alive.
        unsafe { &*self.first.add((position & self.mask) as usize) }
    }

    /// Moves the item out of the slot at `position`.
    ///
    /// # Safety
    ///
    /// The buffer is alive, and the conditions of [`Buffer::read`] hold.
    #[inline]
    pub(crate) unsafe fn read(self, position: u32) -> T {
        // SAFETY: the caller guarantees the buffer is alive and the slot initialized, claimed and not written.
        unsafe { self.slot(position).with(|slot| slot.read().assume_init()) }
    }

    /// Writes `value` into the slot at `position`, forgetting whatever bits were there.
    ///
    /// # Safety
    ///
    /// The buffer is alive, and no other thread reads or writes the slot while this runs (it is outside every
    /// claimed range).
    #[inline]
    pub(crate) unsafe fn write(self, position: u32, value: T) {
        // SAFETY: the caller guarantees the buffer is alive and the slot ours alone.
        unsafe {
            self.slot(position)
                .with_mut(|slot| slot.write(MaybeUninit::new(value)))
        }
    }
}
