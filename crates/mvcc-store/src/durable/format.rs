//! The on-disk format: file headers, checksummed frames, and the records inside them.
//!
//! Every file starts with a 16-byte header: an 8-byte magic naming the kind of file, the format version
//! (`u32`, little-endian) and 4 reserved zero bytes. Then come frames:
//!
//! ```text
//! +-------------+-------------+---------------------+
//! | length: u32 | crc32: u32  | payload: length B   |   little-endian; crc32 (IEEE) of the length's
//! +-------------+-------------+---------------------+   four bytes followed by the payload
//! ```
//!
//! A log segment (`log-<first version, 20 digits>`) holds one frame per commit, whose payload is the
//! postcard encoding of `(version: u64, changes: [(key, Option<value>)])`, versions consecutive. A snapshot
//! (`snapshot`) holds one frame per live key, `(key, version: u64, value)` after a kind byte 0, and ends with
//! a trailer frame, kind byte 1 then `(version: u64, entries: u64)`, so a snapshot cut short is never taken
//! for a whole one.
//!
//! Reading never trusts a length: a frame longer than the bytes left is never allocated, and a frame whose
//! checksum fails is told apart from a torn tail by looking for any valid frame after it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Header length: magic (8), format version (4), reserved (4).
pub(crate) const HEADER_LEN: usize = 16;
/// Frame header length: length (4) and checksum (4).
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// The largest payload a frame may have (1 GiB): anything longer is not a frame of ours.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

pub(crate) const LOG_MAGIC: [u8; 8] = *b"MVCCLOG\0";
pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"MVCCSNP\0";

const SNAPSHOT_ENTRY: u8 = 0;
const SNAPSHOT_TRAILER: u8 = 1;

/// The header of a file of kind `magic`.
pub(crate) fn header(magic: [u8; 8]) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(&magic);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

/// What a file's first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A header of the expected kind and format.
    Valid,
    /// Shorter than a header, and a prefix of a valid one: a file whose creation was cut short.
    Torn,
    /// Not a file of this kind.
    WrongMagic,
    /// The expected kind, in another format version.
    Incompatible(u32),
}

pub(crate) fn check_header(bytes: &[u8], magic: [u8; 8]) -> HeaderCheck {
    let expected = header(magic);
    if bytes.len() < HEADER_LEN {
        return if expected.starts_with(bytes) {
            HeaderCheck::Torn
        } else {
            HeaderCheck::WrongMagic
        };
    }
    if bytes[..8] != magic {
        return HeaderCheck::WrongMagic;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("four bytes"));
    if version != FORMAT_VERSION {
        return HeaderCheck::Incompatible(version);
    }
    HeaderCheck::Valid
}

fn checksum(length: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends a frame around the payload that `encode` appends to `out`. On error nothing is left behind.
pub(crate) fn append_frame(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), postcard::Error>,
) -> Result<(), postcard::Error> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    if let Err(error) = encode(out) {
        out.truncate(start);
        return Err(error);
    }
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    if payload_len == 0 || payload_len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(postcard::Error::SerializeBufferFull);
    }
    let length = (payload_len as u32).to_le_bytes();
    let crc = checksum(length, &out[start + FRAME_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&length);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends `value`'s postcard encoding to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    let encoded = postcard::to_extend(value, std::mem::take(out))?;
    *out = encoded;
    Ok(())
}

/// The frame starting at `position`, if a whole one with a valid checksum is there: its payload and the
/// position after it.
pub(crate) fn frame_at(bytes: &[u8], position: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(position..)?;
    if rest.len() < FRAME_HEADER_LEN {
        return None;
    }
    let length: [u8; 4] = rest[..4].try_into().expect("four bytes");
    let payload_len = u32::from_le_bytes(length) as usize;
    if payload_len == 0 || payload_len > MAX_PAYLOAD || payload_len > rest.len() - FRAME_HEADER_LEN
    {
        return None;
    }
    let stored = u32::from_le_bytes(rest[4..8].try_into().expect("four bytes"));
    let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len];
    if checksum(length, payload) != stored {
        return None;
    }
    Some((payload, position + FRAME_HEADER_LEN + payload_len))
}

/// How a run of frames ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FramesEnd {
    /// Exactly at the end of the bytes.
    Clean,
    /// At `offset`, a frame is cut short or fails its checksum and no valid frame follows: a write torn by
    /// a crash. Truncating there loses only that unacknowledged write.
    Torn { offset: usize },
    /// At `offset`, a frame is damaged but a valid frame follows at `next_valid`: not a torn write, data
    /// after the damage would be lost.
    Corrupt { offset: usize, next_valid: usize },
}

/// Calls `each(offset, payload)` for every valid frame from `start`, in order, and says how the frames ended.
/// Stops early with `each`'s error.
pub(crate) fn for_each_frame<E>(
    bytes: &[u8],
    start: usize,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), E>,
) -> Result<FramesEnd, E> {
    let mut position = start;
    loop {
        if position == bytes.len() {
            return Ok(FramesEnd::Clean);
        }
        match frame_at(bytes, position) {
            Some((payload, next)) => {
                each(position, payload)?;
                position = next;
            }
            None => {
                return Ok(
                    match (position + 1..bytes.len()).find(|&at| frame_at(bytes, at).is_some()) {
                        Some(next_valid) => FramesEnd::Corrupt {
                            offset: position,
                            next_valid,
                        },
                        None => FramesEnd::Torn { offset: position },
                    },
                );
            }
        }
    }
}

/// A log record as written: borrowed changes.
pub(crate) struct RecordRef<'a, K, V> {
    pub(crate) version: u64,
    pub(crate) changes: &'a [(K, Option<std::sync::Arc<V>>)],
}

impl<K: Serialize, V: Serialize> Serialize for RecordRef<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeTuple};
        struct Changes<'a, K, V>(&'a [(K, Option<std::sync::Arc<V>>)]);
        impl<K: Serialize, V: Serialize> Serialize for Changes<'_, K, V> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for (key, value) in self.0 {
                    seq.serialize_element(&(key, value.as_deref()))?;
                }
                seq.end()
            }
        }
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.version)?;
        tuple.serialize_element(&Changes(self.changes))?;
        tuple.end()
    }
}

/// A log record as read back.
pub(crate) type Record<K, V> = (u64, Vec<(K, Option<V>)>);

pub(crate) fn decode_record<K: DeserializeOwned, V: DeserializeOwned>(
    payload: &[u8],
) -> Result<Record<K, V>, postcard::Error> {
    postcard::from_bytes(payload)
}

/// One snapshot entry, framed.
pub(crate) fn append_snapshot_entry<K: Serialize, V: Serialize>(
    out: &mut Vec<u8>,
    key: &K,
    version: u64,
    value: &V,
) -> Result<(), postcard::Error> {
    append_frame(out, |out| {
        out.push(SNAPSHOT_ENTRY);
        encode_into(out, &(key, version, value))
    })
}

/// The snapshot's trailer, framed.
pub(crate) fn append_snapshot_trailer(out: &mut Vec<u8>, version: u64, entries: u64) {
    append_frame(out, |out| {
        out.push(SNAPSHOT_TRAILER);
        encode_into(out, &(version, entries))
    })
    .expect("two integers always encode");
}

/// What a snapshot frame holds.
pub(crate) enum SnapshotFrame<K, V> {
    Entry(K, u64, V),
    Trailer { version: u64, entries: u64 },
}

pub(crate) fn decode_snapshot_frame<K: DeserializeOwned, V: DeserializeOwned>(
    payload: &[u8],
) -> Result<SnapshotFrame<K, V>, postcard::Error> {
    match payload.split_first() {
        Some((&SNAPSHOT_ENTRY, rest)) => {
            let (key, version, value) = postcard::from_bytes(rest)?;
            Ok(SnapshotFrame::Entry(key, version, value))
        }
        Some((&SNAPSHOT_TRAILER, rest)) => {
            let (version, entries) = postcard::from_bytes(rest)?;
            Ok(SnapshotFrame::Trailer { version, entries })
        }
        _ => Err(postcard::Error::DeserializeBadEnum),
    }
}

/// A log segment's file name: its first version, zero-padded so names sort by version.
pub(crate) fn segment_name(first_version: u64) -> String {
    format!("log-{first_version:020}")
}

/// The first version in a segment's file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = header(LOG_MAGIC).to_vec();
        for payload in payloads {
            append_frame(&mut out, |out| {
                out.extend_from_slice(payload);
                Ok(())
            })
            .unwrap();
        }
        out
    }

    fn collect(bytes: &[u8]) -> (Vec<Vec<u8>>, FramesEnd) {
        let mut seen = Vec::new();
        let end = for_each_frame::<()>(bytes, HEADER_LEN, |_, payload| {
            seen.push(payload.to_vec());
            Ok(())
        })
        .unwrap();
        (seen, end)
    }

    #[test]
    fn frames_round_trip() {
        let bytes = frames(&[b"one", b"two", b"three"]);
        let (seen, end) = collect(&bytes);
        assert_eq!(
            seen,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(end, FramesEnd::Clean);
    }

    #[test]
    fn a_cut_last_frame_is_torn_at_its_start() {
        let bytes = frames(&[b"one", b"two"]);
        let second = HEADER_LEN + FRAME_HEADER_LEN + 3;
        for cut in second + 1..bytes.len() {
            let (seen, end) = collect(&bytes[..cut]);
            assert_eq!(seen.len(), 1, "cut at {cut}");
            assert_eq!(end, FramesEnd::Torn { offset: second }, "cut at {cut}");
        }
    }

    #[test]
    fn damage_before_a_valid_frame_is_corruption() {
        let mut bytes = frames(&[b"one", b"two"]);
        bytes[HEADER_LEN + FRAME_HEADER_LEN] ^= 1;
        let (seen, end) = collect(&bytes);
        assert!(seen.is_empty());
        assert_eq!(
            end,
            FramesEnd::Corrupt {
                offset: HEADER_LEN,
                next_valid: HEADER_LEN + FRAME_HEADER_LEN + 3
            }
        );
    }

    #[test]
    fn headers_are_checked() {
        let good = header(LOG_MAGIC);
        assert_eq!(check_header(&good, LOG_MAGIC), HeaderCheck::Valid);
        assert_eq!(check_header(&good[..5], LOG_MAGIC), HeaderCheck::Torn);
        assert_eq!(check_header(&[], LOG_MAGIC), HeaderCheck::Torn);
        assert_eq!(check_header(&good, SNAPSHOT_MAGIC), HeaderCheck::WrongMagic);
        let mut future = good;
        future[8] = 7;
        assert_eq!(
            check_header(&future, LOG_MAGIC),
            HeaderCheck::Incompatible(7)
        );
    }

    #[test]
    fn segment_names_sort_by_version_and_parse_back() {
        assert_eq!(segment_name(42), "log-00000000000000000042");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("log-42"), None);
        assert_eq!(parse_segment_name("snapshot"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
