//! The durable store: round trips, checkpoints, torn tails cut at every byte, bit flips, bad files, and a
//! child process killed with SIGKILL while it commits under `Durability::Fsync`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mvcc_store::{Durability, OpenError, Store, Version};

type Db = Store<String, Vec<u8>>;

fn open(path: &Path) -> Db {
    Store::open(path, Durability::Fsync).expect("open the store")
}

fn key(index: u64) -> String {
    format!("key-{index:04}")
}

fn value(version: u64) -> Vec<u8> {
    format!("value written by commit {version}").into_bytes()
}

/// Commits `count` single-key commits (commit `v` writes `key(v % 7)`), then closes the store.
fn fill(path: &Path, count: u64) {
    let store = open(path);
    for version in 1..=count {
        assert_eq!(
            store.put(key(version % 7), value(version)).unwrap(),
            Version::new(version)
        );
    }
}

/// What the store must hold after commits `1..=through`.
fn check_state(store: &Db, through: u64) {
    assert_eq!(store.version(), Version::new(through));
    for slot in 0..7 {
        let last_writer = (1..=through).rev().find(|version| version % 7 == slot);
        let expected = last_writer.map(|version| (Version::new(version), Arc::new(value(version))));
        assert_eq!(
            store.get_versioned(&key(slot)),
            expected,
            "key {slot} after {through} commits"
        );
    }
}

fn segments(path: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = fs::read_dir(path)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("log-")
        })
        .collect();
    segments.sort();
    segments
}

/// The byte offsets where each frame of a log segment starts, and the file's length.
fn frame_offsets(segment: &Path) -> (Vec<usize>, usize) {
    let bytes = fs::read(segment).unwrap();
    let mut offsets = Vec::new();
    let mut position = 16;
    while position < bytes.len() {
        offsets.push(position);
        let length = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
        position += 8 + length;
    }
    assert_eq!(
        position,
        bytes.len(),
        "the segment ends on a frame boundary"
    );
    (offsets, bytes.len())
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn commits_survive_reopening_with_their_versions() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 50);
    let store = open(directory.path());
    check_state(&store, 50);
    let recovery = store.recovery().unwrap();
    assert_eq!(recovery.commits_replayed, 50);
    assert_eq!(recovery.torn_bytes_dropped, 0);
    // Commits go on after recovery, at the next version.
    assert_eq!(store.put(key(51 % 7), value(51)).unwrap(), Version::new(51));
    drop(store);
    check_state(&open(directory.path()), 51);
}

#[test]
fn transactions_and_deletes_replay() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store = open(directory.path());
        let mut txn = store.begin_serializable();
        txn.put("a".to_string(), vec![1]);
        txn.put("b".to_string(), vec![2]);
        txn.commit().unwrap();
        store.delete("a".to_string()).unwrap();
        store
            .compare_and_swap("c".to_string(), None, vec![3])
            .unwrap();
    }
    let store = open(directory.path());
    let snapshot = store.snapshot();
    let all: Vec<(String, Vec<u8>)> = snapshot
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        all,
        vec![("b".to_string(), vec![2]), ("c".to_string(), vec![3])]
    );
    assert_eq!(snapshot.version(), Version::new(3));
}

#[test]
fn subscriptions_resume_across_a_restart_from_the_log() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 20);
    let store = open(directory.path());
    let mut changes = store.subscribe(.., Some(Version::new(15))).unwrap();
    let versions: Vec<u64> = (0..5)
        .map(|_| changes.try_next().unwrap().unwrap().version.get())
        .collect();
    assert_eq!(versions, vec![16, 17, 18, 19, 20]);
    assert!(changes.try_next().is_none());
}

#[test]
fn checkpoint_compacts_the_log_and_reopens_from_the_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store = open(directory.path());
        for version in 1..=30 {
            store.put(key(version % 7), value(version)).unwrap();
        }
        let held = store.snapshot();
        assert_eq!(store.checkpoint().unwrap(), Some(Version::new(30)));
        assert_eq!(
            held.get(&key(2)),
            Some(&value(30)),
            "a checkpoint disturbs no snapshot"
        );
        for version in 31..=40 {
            store.put(key(version % 7), value(version)).unwrap();
        }
        // A second checkpoint right after the first, with nothing new, changes nothing.
        assert_eq!(store.checkpoint().unwrap(), Some(Version::new(40)));
        assert_eq!(store.checkpoint().unwrap(), Some(Version::new(40)));
        store.put(key(41 % 7), value(41)).unwrap();
    }
    assert_eq!(
        segments(directory.path()).len(),
        1,
        "older segments are deleted"
    );
    let store = open(directory.path());
    check_state(&store, 41);
    let recovery = store.recovery().unwrap();
    assert_eq!(recovery.snapshot_version, Version::new(40));
    assert_eq!(recovery.snapshot_entries, 7);
    assert_eq!(recovery.commits_replayed, 1);
}

#[test]
fn a_checkpoint_runs_in_the_background_when_the_log_grows() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store: Db = Store::builder()
            .checkpoint_bytes(4096)
            .open(directory.path(), Durability::Buffered)
            .unwrap();
        for version in 1..=500 {
            store.put(key(version % 7), value(version)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !directory.path().join("snapshot").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no background checkpoint"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(store.last_checkpoint_error(), None);
    }
    let store = open(directory.path());
    check_state(&store, 500);
    assert!(store.recovery().unwrap().snapshot_version > Version::ZERO);
}

#[test]
fn a_torn_last_record_is_dropped_at_every_cut() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 12);
    let segment = segments(directory.path()).pop().unwrap();
    let (offsets, length) = frame_offsets(&segment);
    let last = *offsets.last().unwrap();
    let original = fs::read(&segment).unwrap();
    for cut in last..length {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(directory.path(), copy.path());
        let name = segment.file_name().unwrap();
        fs::write(copy.path().join(name), &original[..cut]).unwrap();
        let store = open(copy.path());
        check_state(&store, 11);
        assert_eq!(
            store.recovery().unwrap().torn_bytes_dropped,
            (cut - last) as u64,
            "cut at {cut}"
        );
        // The log goes on cleanly after the truncation.
        store.put(key(12 % 7), value(12)).unwrap();
        drop(store);
        check_state(&open(copy.path()), 12);
    }
}

#[test]
fn a_bit_flip_in_the_last_record_drops_only_it() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 5);
    let segment = segments(directory.path()).pop().unwrap();
    let (offsets, length) = frame_offsets(&segment);
    let last = *offsets.last().unwrap();
    let original = fs::read(&segment).unwrap();
    for byte in last..length {
        for bit in 0..8 {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(directory.path(), copy.path());
            let mut damaged = original.clone();
            damaged[byte] ^= 1 << bit;
            fs::write(copy.path().join(segment.file_name().unwrap()), &damaged).unwrap();
            let store = open(copy.path());
            check_state(&store, 4);
            assert_eq!(
                store.recovery().unwrap().torn_bytes_dropped,
                (length - last) as u64,
                "flip of bit {bit} of byte {byte}"
            );
        }
    }
}

#[test]
fn damage_before_the_last_record_is_an_error_not_a_truncation() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 5);
    let segment = segments(directory.path()).pop().unwrap();
    let (offsets, _) = frame_offsets(&segment);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[offsets[2] + 10] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();
    let error = Db::open(directory.path(), Durability::Fsync).unwrap_err();
    match &error {
        OpenError::Corrupt {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, offsets[2] as u64);
            assert!(reason.contains("valid record follows"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("corrupt at byte {}", offsets[2])),
        "{message}"
    );
    // Nothing was truncated: the damage is still there to inspect.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_log_from_another_format_version_names_both_versions() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 3);
    let segment = segments(directory.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    fs::write(&segment, &bytes).unwrap();
    let error = Db::open(directory.path(), Durability::Fsync).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::IncompatibleFormat {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("format version 7; this build reads format version 1"),
        "{error}"
    );
}

#[test]
fn a_foreign_file_is_not_taken_for_a_log() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 3);
    let segment = segments(directory.path()).pop().unwrap();
    fs::write(&segment, b"this is not a log segment at all").unwrap();
    let error = Db::open(directory.path(), Durability::Fsync).unwrap_err();
    assert!(matches!(error, OpenError::NotAStore { .. }), "{error:?}");
}

#[test]
fn a_missing_segment_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store = open(directory.path());
        for version in 1..=10 {
            store.put(key(version % 7), value(version)).unwrap();
        }
        store.checkpoint().unwrap();
        for version in 11..=20 {
            store.put(key(version % 7), value(version)).unwrap();
        }
    }
    // Without the snapshot, the segment that starts at 11 cannot follow version 0.
    fs::remove_file(directory.path().join("snapshot")).unwrap();
    let error = Db::open(directory.path(), Durability::Fsync).unwrap_err();
    match error {
        OpenError::Corrupt { reason, .. } => {
            assert!(
                reason.contains("commits from version 1 to 10 are missing"),
                "{reason}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_damaged_snapshot_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store = open(directory.path());
        for version in 1..=10 {
            store.put(key(version % 7), value(version)).unwrap();
        }
        store.checkpoint().unwrap();
    }
    let path = directory.path().join("snapshot");
    let bytes = fs::read(&path).unwrap();
    for cut in [16, bytes.len() / 2, bytes.len() - 1] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(directory.path(), copy.path());
        fs::write(copy.path().join("snapshot"), &bytes[..cut]).unwrap();
        let error = Db::open(copy.path(), Durability::Fsync).unwrap_err();
        assert!(
            matches!(error, OpenError::Corrupt { .. }),
            "cut at {cut}: {error:?}"
        );
    }
}

#[test]
fn wrong_types_are_reported_not_panicked_on() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 3);
    let error = Store::<u64, bool>::open(directory.path(), Durability::Fsync).unwrap_err();
    assert!(matches!(error, OpenError::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("does not decode"), "{error}");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let first = open(directory.path());
    let error = Db::open(directory.path(), Durability::Fsync).unwrap_err();
    assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
    drop(first);
    let _reopened = open(directory.path());
}

#[test]
fn a_leftover_temporary_snapshot_is_ignored() {
    let directory = tempfile::tempdir().unwrap();
    fill(directory.path(), 4);
    fs::write(directory.path().join("snapshot.tmp"), b"half a snapshot").unwrap();
    check_state(&open(directory.path()), 4);
    assert!(!directory.path().join("snapshot.tmp").exists());
}

#[test]
fn buffered_durability_round_trips() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store: Db = Store::open(directory.path(), Durability::Buffered).unwrap();
        for version in 1..=20 {
            store.put(key(version % 7), value(version)).unwrap();
        }
    }
    check_state(&open(directory.path()), 20);
}

#[test]
fn concurrent_commits_share_syncs_and_all_survive() {
    let directory = tempfile::tempdir().unwrap();
    {
        let store = open(directory.path());
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let store = &store;
                scope.spawn(move || {
                    for index in 0..50u64 {
                        store
                            .put(format!("t{thread}-{index}"), vec![thread as u8])
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(store.version(), Version::new(200));
    }
    let store = open(directory.path());
    assert_eq!(store.snapshot().iter().count(), 200);
}

const CHILD_ENV: &str = "MVCC_STORE_SIGKILL_CHILD_DIR";

/// Run as a child process by `acknowledged_commits_survive_sigkill`: commits forever, printing each
/// acknowledged version. Returns at once in a normal test run.
#[test]
fn sigkill_child() {
    let Ok(directory) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(Path::new(&directory));
    let start = store.version().get();
    let mut stdout = std::io::stdout().lock();
    for version in start + 1.. {
        let acknowledged = store.put(key(version % 7), value(version)).unwrap();
        assert_eq!(acknowledged.get(), version);
        use std::io::Write;
        writeln!(stdout, "acknowledged {version}").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn acknowledged_commits_survive_sigkill() {
    let directory = tempfile::tempdir().unwrap();
    let mut last_acknowledged = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, directory.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let target = last_acknowledged + 200 + round * 37;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(version) = line.strip_prefix("acknowledged ") {
                last_acknowledged = version.parse().unwrap();
                if last_acknowledged >= target {
                    break;
                }
            }
        }
        // SIGKILL while it is committing.
        child.kill().unwrap();
        child.wait().unwrap();
        let store = open(directory.path());
        let recovered = store.version().get();
        assert!(
            recovered >= last_acknowledged,
            "round {round}: acknowledged {last_acknowledged} but recovered only {recovered}"
        );
        check_state(&store, recovered);
        last_acknowledged = recovered;
    }
}
