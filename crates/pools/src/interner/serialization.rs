//! `serde` support (feature `serde`): a [`Symbol`] is its number; an [`Interner`] is the sequence of its
//! strings in symbol order, so deserializing it gives every string the symbol it had.

use core::fmt;
use core::hash::BuildHasher;
use core::marker::PhantomData;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Interner, Symbol};

/// The most strings a size hint from the input may pre-allocate for: a hint is not trusted further.
const MAX_PREALLOCATED: usize = 4096;

impl Serialize for Symbol {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_u32(self.to_u32())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u32::deserialize(deserializer)?;
        Symbol::from_u32(value).ok_or_else(|| {
            de::Error::invalid_value(de::Unexpected::Unsigned(0), &"a symbol (1 or more)")
        })
    }
}

/// Serializes the strings in symbol order (a sequence of strings).
///
/// Strings interned by other threads while this runs are left out if they came after it started.
impl<S> Serialize for Interner<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_seq(self.iter().map(|(_, string)| string))
    }
}

/// Rebuilds an interner from a sequence of strings: the `n`-th string gets symbol `n`.
///
/// A string that appears twice is an error (it could not keep both symbols).
impl<'de, S: BuildHasher + Default> Deserialize<'de> for Interner<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(InternerVisitor(PhantomData))
    }
}

struct InternerVisitor<S>(PhantomData<S>);

impl<'de, S: BuildHasher + Default> Visitor<'de> for InternerVisitor<S> {
    type Value = Interner<S>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a sequence of distinct strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let capacity = seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED);
        let interner = Interner::with_capacity_and_hasher(capacity, S::default());
        while let Some(outcome) = seq.next_element_seed(InternOne(&interner))? {
            if let Err((string, symbol)) = outcome {
                return Err(de::Error::custom(format_args!(
                    "duplicate string {string:?} at position {} (first at position {})",
                    interner.len(),
                    symbol.index()
                )));
            }
        }
        Ok(interner)
    }
}

/// Interns one string of the sequence straight from the deserializer's buffer (no `String` per element).
/// Yields `Err((string, symbol))` for a string already present.
struct InternOne<'a, S>(&'a Interner<S>);

impl<'de, S: BuildHasher> DeserializeSeed<'de> for InternOne<'_, S> {
    type Value = Result<(), (String, Symbol)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, S: BuildHasher> Visitor<'de> for InternOne<'_, S> {
    type Value = Result<(), (String, Symbol)>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, string: &str) -> Result<Self::Value, E> {
        if let Some(symbol) = self.0.get(string) {
            return Ok(Err((string.to_owned(), symbol)));
        }
        self.0.try_intern(string).map_err(E::custom)?;
        Ok(Ok(()))
    }
}
