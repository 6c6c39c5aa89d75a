//! Disk faults the correct node answers by stopping, and the two planted
//! bugs that answer them wrongly: `wal-ignore-crc` uses WAL records (and a
//! snapshot, see `snapshot.rs`) that fail their checksums, and
//! `fsync-error-ignored` carries on after a failed fsync.
//!
//! A failing fsync needs no hook in the code: a segment that is a symlink
//! to /dev/null takes every write, and fsync on it fails (EINVAL), as a
//! disk answering EIO would make it fail.
mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use faultline_node::bugs::Bugs;
use faultline_node::wal::{HardState, Record, Wal, WalEntry, WalError};
use serde_json::json;
use support::{Cluster, WAIT_MS_MAX};

const SEGMENT_BYTES_MAX: u64 = 1 << 20;
/// Bytes of an entry frame before its payload: frame header, kind, index, term.
const ENTRY_PAYLOAD_OFFSET: usize = 12 + 1 + 8 + 8;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fl-disk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entry(index: u64) -> Record {
    Record::Entry(WalEntry { index, term: 1, payload: format!("value-{index}").into_bytes(), config: false })
}

fn hard_state(commit: u64) -> Record {
    Record::HardState(HardState { term: 1, vote: 1, commit })
}

/// Writes `records` as the only segment and returns its path and the
/// offset each record starts at.
fn write_segment(dir: &Path, records: &[Record]) -> (PathBuf, Vec<usize>) {
    let (mut wal, _) = Wal::open(dir, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    wal.append(records).unwrap();
    wal.sync().unwrap();
    let mut offsets = Vec::new();
    let mut bytes = Vec::new();
    for record in records {
        offsets.push(bytes.len());
        record.encode_into(&mut bytes);
    }
    let segment = dir.join(format!("{:020}.wal", 1));
    assert_eq!(fs::read(&segment).unwrap(), bytes);
    (segment, offsets)
}

fn flip(segment: &Path, at: usize, mask: u8) -> Vec<u8> {
    let mut bytes = fs::read(segment).unwrap();
    bytes[at] ^= mask;
    fs::write(segment, &bytes).unwrap();
    bytes
}

fn ignoring_crc() -> Bugs {
    Bugs::parse("wal-ignore-crc").unwrap()
}

/// The correct node refuses with `Corrupt` naming `segment` and `offset`,
/// and leaves the file as it was.
fn assert_refuses_at(dir: &Path, segment: &Path, offset: usize) {
    let before = fs::read(segment).unwrap();
    let refusal = Wal::open(dir, (0, 0), SEGMENT_BYTES_MAX).err().expect("damage must refuse to open");
    match &refusal {
        WalError::Corrupt { path, offset: at, .. } => assert_eq!((path.as_path(), *at), (segment, offset as u64)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = refusal.to_string();
    let head = format!("WAL corrupt: {} at offset {offset}: ", segment.display());
    assert!(message.starts_with(&head) && message.ends_with("; refusing to start"), "{message}");
    assert_eq!(fs::read(segment).unwrap(), before, "a refusal repairs nothing");
}

fn payloads(dir: &Path, bugs: Bugs) -> Vec<(u64, String)> {
    let (_, recovered) = Wal::open_with_bugs(dir, (0, 0), SEGMENT_BYTES_MAX, bugs).unwrap();
    let text = |e: &WalEntry| String::from_utf8_lossy(&e.payload).into_owned();
    recovered.entries.iter().map(|e| (e.index, text(e))).collect()
}

fn expected(flipped: Option<(u64, &str)>) -> Vec<(u64, String)> {
    let value = |i: u64| match flipped {
        Some((at, value)) if at == i => value.to_string(),
        _ => format!("value-{i}"),
    };
    (1..=10).map(|i| (i, value(i))).collect()
}

#[test]
fn flipped_payload_byte_mid_log_refuses_and_wal_ignore_crc_serves_it() {
    let tmp = TempDir::new("payload");
    let mut records: Vec<Record> = (1..=10).map(entry).collect();
    records.push(hard_state(10));
    let (segment, offsets) = write_segment(&tmp.0, &records);
    // 'v' of entry 2's "value-2" becomes 'w': a stored value, bit-flipped.
    flip(&segment, offsets[1] + ENTRY_PAYLOAD_OFFSET, 0x01);
    assert_refuses_at(&tmp.0, &segment, offsets[1]);
    assert_eq!(payloads(&tmp.0, ignoring_crc()), expected(Some((2, "walue-2"))));
    let (_, recovered) = Wal::open_with_bugs(&tmp.0, (0, 0), SEGMENT_BYTES_MAX, ignoring_crc()).unwrap();
    assert_eq!(recovered.hard_state.commit, 10, "recovery went on past the damaged record");
}

#[test]
fn flipped_header_byte_mid_log_refuses_and_wal_ignore_crc_trusts_the_length() {
    // Payload checksum (bytes 4..8) or header checksum (8..12): the header
    // checksum fails, the length is still right.
    for at in [5, 10] {
        let tmp = TempDir::new(&format!("header-{at}"));
        let records: Vec<Record> = (1..=10).map(entry).collect();
        let (segment, offsets) = write_segment(&tmp.0, &records);
        flip(&segment, offsets[2] + at, 0x40);
        assert_refuses_at(&tmp.0, &segment, offsets[2]);
        assert_eq!(payloads(&tmp.0, ignoring_crc()), expected(None), "byte {at}");
    }
}

#[test]
fn a_length_that_runs_past_the_end_is_refused_even_by_wal_ignore_crc() {
    let tmp = TempDir::new("length");
    let records: Vec<Record> = (1..=10).map(entry).collect();
    let (segment, offsets) = write_segment(&tmp.0, &records);
    // Bit 24 of the third record's length: 16 MiB more, past the end.
    flip(&segment, offsets[2] + 3, 0x01);
    assert_refuses_at(&tmp.0, &segment, offsets[2]);
    let refusal = Wal::open_with_bugs(&tmp.0, (0, 0), SEGMENT_BYTES_MAX, ignoring_crc()).err();
    assert!(matches!(refusal, Some(WalError::Corrupt { offset, .. }) if offset == offsets[2] as u64));
}

#[test]
fn wal_ignore_crc_skips_a_record_that_does_not_decode_and_reads_on() {
    let tmp = TempDir::new("skip");
    let mut records: Vec<Record> = (1..=3).map(entry).collect();
    records.push(hard_state(2));
    records.extend((4..=10).map(entry));
    let (segment, offsets) = write_segment(&tmp.0, &records);
    // The hard state's kind byte: 2 becomes 0x42, a kind that does not exist.
    flip(&segment, offsets[3] + 12, 0x40);
    assert_refuses_at(&tmp.0, &segment, offsets[3]);
    assert_eq!(payloads(&tmp.0, ignoring_crc()), expected(None));
    let (_, recovered) = Wal::open_with_bugs(&tmp.0, (0, 0), SEGMENT_BYTES_MAX, ignoring_crc()).unwrap();
    assert_eq!(recovered.hard_state, HardState::default(), "the skipped hard state is not used");
}

#[test]
fn wal_ignore_crc_still_cuts_a_torn_tail() {
    for bugs in [Bugs::default(), ignoring_crc()] {
        let tmp = TempDir::new(&format!("torn-{}", bugs.wal_ignore_crc));
        let records: Vec<Record> = (1..=9).map(entry).collect();
        let (segment, _) = write_segment(&tmp.0, &records);
        let whole_len = fs::metadata(&segment).unwrap().len();
        // A whole last frame whose payload never landed intact, then blocks
        // that were allocated but never written: a torn write, never acked.
        let mut frame = Vec::new();
        entry(10).encode_into(&mut frame);
        frame[ENTRY_PAYLOAD_OFFSET] ^= 0x01;
        frame.extend_from_slice(&[0u8; 4096]);
        OpenOptions::new().append(true).open(&segment).unwrap().write_all(&frame).unwrap();
        let mut nine = expected(None);
        nine.pop();
        assert_eq!(payloads(&tmp.0, bugs), nine, "{bugs:?}");
        assert_eq!(fs::metadata(&segment).unwrap().len(), whole_len, "{bugs:?}");
    }
}

/// A WAL directory whose only segment swallows writes and fails fsync.
fn segment_on_dev_null(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let segment = dir.join(format!("{:020}.wal", 1));
    std::os::unix::fs::symlink("/dev/null", &segment).unwrap();
    segment
}

#[test]
fn a_failed_fsync_is_an_error_unless_fsync_error_ignored() {
    let tmp = TempDir::new("fsync");
    let segment = segment_on_dev_null(&tmp.0);
    let (mut wal, _) = Wal::open(&tmp.0, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    wal.append(&[entry(1)]).unwrap();
    let failure = wal.sync().unwrap_err();
    let WalError::Sync { path, source } = &failure else {
        panic!("expected Sync, got {failure:?}");
    };
    assert_eq!(path, &segment);
    assert!(source.raw_os_error().is_some(), "{source:?}");
    let line = format!("WAL fsync failed on {}: {source}; stopping: nothing unsynced was acknowledged", segment.display());
    assert_eq!(failure.to_string(), line);
    drop(wal);

    let bugs = Bugs::parse("fsync-error-ignored").unwrap();
    let (mut wal, _) = Wal::open_with_bugs(&tmp.0, (0, 0), SEGMENT_BYTES_MAX, bugs).unwrap();
    wal.append(&[entry(1)]).unwrap();
    wal.sync().expect("the planted bug carries on");
    wal.append(&[entry(2)]).unwrap();
    wal.sync().expect("and on");
}

/// The last non-empty line of node 1's log.
fn last_line(cluster: &Cluster) -> String {
    let log = fs::read_to_string(cluster.log_path(1)).unwrap();
    log.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default().to_string()
}

#[test]
fn a_node_whose_fsync_fails_stops_with_one_line_and_exit_2() {
    let mut cluster = Cluster::start_some("fsync-fails", 1, 0, &[]);
    let segment = segment_on_dev_null(&cluster.dir.join("node1").join("wal"));
    cluster.start_node(1);
    // A lone node elects itself: its first fsync (term and vote) fails,
    // before any client could be answered.
    assert_eq!(cluster.wait_exit(1, WAIT_MS_MAX), Some(2), "{}", cluster.logs_tail());
    let log = fs::read_to_string(cluster.log_path(1)).unwrap();
    assert_eq!(log.lines().filter(|line| line.contains("fsync")).count(), 1, "{log}");
    let line = last_line(&cluster);
    let head = format!("faultline-node: WAL fsync failed on {}: ", segment.display());
    assert!(line.starts_with(&head), "{log}");
    assert!(line.ends_with("(os error 22); stopping: nothing unsynced was acknowledged"), "{log}");
}

#[test]
fn fsync_error_ignored_acknowledges_a_write_it_then_loses() {
    let mut cluster = Cluster::start_some("fsync-ignored", 1, 0, &["--bugs", "fsync-error-ignored"]);
    segment_on_dev_null(&cluster.dir.join("node1").join("wal"));
    cluster.start_node(1);
    cluster.wait_leader();
    let put = json!({"op": "put", "key": "k", "value": "v"});
    let answer = cluster.client(1).and_then(|mut c| c.call(put)).expect("an answer");
    assert_eq!(answer["ok"], true, "{answer}");
    let log = fs::read_to_string(cluster.log_path(1)).unwrap();
    assert!(log.contains("WAL fsync failed; carrying on"), "{log}");
    assert_eq!(cluster.terminate(1), Some(0));
    // Nothing reached the disk: the acknowledged write is gone.
    cluster.start_node(1);
    cluster.wait_leader();
    let get = json!({"op": "get", "key": "k"});
    let answer = cluster.client(1).and_then(|mut c| c.call(get)).expect("an answer");
    assert_eq!((&answer["ok"], &answer["value"]), (&json!(true), &json!(null)), "{answer}");
}
