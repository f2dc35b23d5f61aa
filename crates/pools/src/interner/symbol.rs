//! [`Symbol`]: the small, `Copy` name of an interned string.

use core::fmt;
use core::num::NonZeroU32;

/// The name of a string in an [`Interner`](crate::Interner): 4 bytes, `Copy`, cheap to compare and hash.
///
/// An interner numbers its strings 1, 2, 3, ... in the order they were first interned, so symbols are dense:
/// [`index`](Symbol::index) (the number minus one) can index a `Vec` of per-string data. The value is a
/// [`NonZeroU32`], so `Option<Symbol>` is 4 bytes too.
///
/// A symbol only means something to the interner that made it: see
/// [`Interner::resolve`](crate::Interner::resolve) for what a symbol from another interner does (never
/// undefined behaviour).
///
/// ```
/// use pools::{Interner, Symbol};
///
/// let interner = Interner::new();
/// let hello = interner.intern("hello");
/// assert_eq!(hello.to_u32(), 1);
/// assert_eq!(Symbol::from_u32(1), Some(hello));
/// assert_eq!(size_of::<Option<Symbol>>(), 4);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Symbol(NonZeroU32);

impl Symbol {
    /// The symbol with this number, or `None` for 0 (symbols start at 1).
    #[inline]
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match NonZeroU32::new(value) {
            Some(value) => Some(Self(value)),
            None => None,
        }
    }

    /// The symbol's number: 1 for the first string interned, 2 for the second, ...
    #[inline]
    #[must_use]
    pub const fn to_u32(self) -> u32 {
        self.0.get()
    }

    /// The symbol's position, from 0: `to_u32() - 1`. Handy to index a `Vec` of per-string data.
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    /// The symbol at position `index` (from 0), or `None` if no symbol has that position
    /// (`index >= u32::MAX`).
    #[inline]
    #[must_use]
    pub const fn from_index(index: usize) -> Option<Self> {
        if index < u32::MAX as usize {
            Self::from_u32(index as u32 + 1)
        } else {
            None
        }
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Symbol").field(&self.0.get()).finish()
    }
}

impl From<NonZeroU32> for Symbol {
    #[inline]
    fn from(value: NonZeroU32) -> Self {
        Self(value)
    }
}

impl From<Symbol> for NonZeroU32 {
    #[inline]
    fn from(symbol: Symbol) -> Self {
        symbol.0
    }
}

impl From<Symbol> for u32 {
    #[inline]
    fn from(symbol: Symbol) -> Self {
        symbol.0.get()
    }
}
