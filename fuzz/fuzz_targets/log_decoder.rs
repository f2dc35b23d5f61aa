//! Fuzzing of `mvcc-store`'s log and snapshot decoding (feature `durable`), the code `Store::open` runs
//! over whatever it finds on disk.
//!
//! The input is either raw bytes (a file as found, header and all) or a log of valid records that the
//! fuzzer then damages: bytes overwritten, a cut, bits flipped. Decoding must never panic, and must never
//! allocate far more than the file holds: a counting allocator records the peak while the bytes are
//! decoded, and the target fails if it exceeds eight times the input plus 2 MiB (serde's cautious
//! preallocation caps a claimed sequence length at 1 MiB). For an undamaged log, every change must decode.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Counts the bytes allocated and their peak on this thread (the fuzzer runs one).
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counters are plain thread-local cells that allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + layout.size();
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(layout.size())));
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Arbitrary, Debug)]
enum Damage {
    /// Overwrite the byte at this position (modulo the length) with this value.
    Overwrite(u16, u8),
    /// Flip one bit of the byte at this position.
    FlipBit(u16, u8),
    /// Cut the file to this length.
    Cut(u16),
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A file as found on disk.
    Raw(Vec<u8>),
    /// A log of valid records, then damage.
    Log {
        records: Vec<Vec<(String, Option<Vec<u8>>)>>,
        damage: Vec<Damage>,
    },
}

fn decode_counting(bytes: &[u8]) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let decoded = mvcc_store::fuzz_decode_file(bytes);
    let peak = PEAK.with(Cell::get) - before;
    assert!(
        peak <= bytes.len() * 8 + (2 << 20),
        "decoding {} bytes allocated up to {peak} bytes at once",
        bytes.len()
    );
    decoded
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(bytes) => {
            decode_counting(&bytes);
        }
        Input::Log { records, damage } => {
            let mut log = mvcc_store::fuzz_log_header().to_vec();
            let mut changes_written = 0;
            for (index, changes) in records.iter().enumerate() {
                let changes: Vec<(String, Option<Arc<Vec<u8>>>)> = changes
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone().map(Arc::new)))
                    .collect();
                changes_written += changes.len();
                mvcc_store::fuzz_encode_record(&mut log, index as u64 + 1, &changes);
            }
            if damage.is_empty() {
                assert_eq!(
                    decode_counting(&log),
                    changes_written,
                    "an undamaged log decodes whole"
                );
                return;
            }
            for damage in damage {
                if log.is_empty() {
                    break;
                }
                match damage {
                    Damage::Overwrite(at, byte) => {
                        let at = at as usize % log.len();
                        log[at] = byte;
                    }
                    Damage::FlipBit(at, bit) => {
                        let at = at as usize % log.len();
                        log[at] ^= 1 << (bit % 8);
                    }
                    Damage::Cut(to) => log.truncate(to as usize % (log.len() + 1)),
                }
            }
            decode_counting(&log);
        }
    }
});
