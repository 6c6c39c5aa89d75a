//! WAL recovery on damaged disks: torn tails are cut, mid-file damage refuses
//! to start with the file and offset, empty and missing pieces behave.
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use faultline_node::wal::{HardState, Record, Wal, WalEntry, WalError};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fl-wal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SEGMENT_BYTES_MAX: u64 = 1 << 20;

fn entry(index: u64, term: u64) -> Record {
    Record::Entry(WalEntry {
        index,
        term,
        payload: format!("payload-{index}").into_bytes(),
        config: false,
    })
}

fn write_entries(dir: &Path, range: std::ops::RangeInclusive<u64>, term: u64) {
    let (mut wal, _) = Wal::open(dir, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    let records: Vec<Record> = range.map(|i| entry(i, term)).collect();
    wal.append(&records).unwrap();
    wal.append(&[Record::HardState(HardState {
        term,
        vote: 1,
        commit: 2,
    })])
    .unwrap();
    wal.sync().unwrap();
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

fn indexes(dir: &Path) -> Vec<u64> {
    let (_, recovered) = Wal::open(dir, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    recovered.entries.iter().map(|e| e.index).collect()
}

#[test]
fn missing_directory_is_created_empty() {
    let tmp = TempDir::new("missing");
    let dir = tmp.0.join("a/b/wal");
    let (_, recovered) = Wal::open(&dir, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    assert!(recovered.entries.is_empty());
    assert_eq!(recovered.hard_state, HardState::default());
    assert!(dir.is_dir());
}

#[test]
fn empty_segment_file_recovers_empty() {
    let tmp = TempDir::new("empty");
    fs::create_dir_all(&tmp.0).unwrap();
    fs::write(tmp.0.join(format!("{:020}.wal", 1)), b"").unwrap();
    let (mut wal, recovered) = Wal::open(&tmp.0, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    assert!(recovered.entries.is_empty());
    wal.append(&[entry(1, 1)]).unwrap();
    wal.sync().unwrap();
    assert_eq!(indexes(&tmp.0), vec![1]);
}

#[test]
fn torn_tail_is_truncated_to_last_whole_record() {
    let tmp = TempDir::new("torn");
    write_entries(&tmp.0, 1..=5, 1);
    let segment = only_segment(&tmp.0);
    let whole_len = fs::metadata(&segment).unwrap().len();
    // A write cut in the middle of a record: the last few bytes never landed.
    let mut frame = Vec::new();
    entry(6, 1).encode_into(&mut frame);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&frame[..frame.len() - 3]).unwrap();
    drop(file);
    assert_eq!(indexes(&tmp.0), vec![1, 2, 3, 4, 5]);
    assert_eq!(fs::metadata(&segment).unwrap().len(), whole_len);
}

#[test]
fn zero_filled_tail_is_truncated() {
    let tmp = TempDir::new("zeroes");
    write_entries(&tmp.0, 1..=3, 1);
    let segment = only_segment(&tmp.0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0u8; 4096]).unwrap();
    drop(file);
    assert_eq!(indexes(&tmp.0), vec![1, 2, 3]);
}

/// Bytes that entries `range` (written by `write_entries`) take on disk.
fn frames_bytes(range: std::ops::RangeInclusive<u64>, term: u64) -> usize {
    let mut bytes = Vec::new();
    for i in range {
        entry(i, term).encode_into(&mut bytes);
    }
    bytes.len()
}

/// Opening must refuse with `Corrupt` naming `segment` and `offset`, in the
/// error and its message, and must leave the damaged file as it was.
fn assert_refuses_at(dir: &Path, segment: &Path, offset: usize, damaged: &[u8]) {
    let err = Wal::open(dir, (0, 0), SEGMENT_BYTES_MAX)
        .err()
        .expect("corruption must refuse to open");
    match &err {
        WalError::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!(path, segment);
            assert_eq!(*at, offset as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&segment.display().to_string())
            && message.contains(&format!("offset {offset}")),
        "{message}"
    );
    // Refusing must not have "repaired" anything.
    assert_eq!(fs::read(segment).unwrap(), damaged);
}

#[test]
fn flipped_bit_mid_file_refuses_with_file_and_offset() {
    let tmp = TempDir::new("bitflip");
    write_entries(&tmp.0, 1..=10, 1);
    let segment = only_segment(&tmp.0);
    let mut bytes = fs::read(&segment).unwrap();
    let second = frames_bytes(1..=1, 1);
    // Flip a payload bit of the second record; eight more records follow it.
    bytes[second + 16] ^= 0x04;
    fs::write(&segment, &bytes).unwrap();
    assert_refuses_at(&tmp.0, &segment, second, &bytes);
}

#[test]
fn flipped_length_bit_mid_file_refuses_with_file_and_offset() {
    let tmp = TempDir::new("lenflip");
    write_entries(&tmp.0, 1..=10, 1);
    let segment = only_segment(&tmp.0);
    let mut bytes = fs::read(&segment).unwrap();
    let third = frames_bytes(1..=2, 1);
    // Bit 24 of the third record's little-endian length: 16 MiB more is
    // still a legal length (below PAYLOAD_BYTES_MAX) but runs far past the end
    // of the file, as a torn write would; yet eight fsynced records follow
    // it and must not be dropped.
    bytes[third + 3] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    assert_refuses_at(&tmp.0, &segment, third, &bytes);
}

#[test]
fn torn_header_is_truncated() {
    let tmp = TempDir::new("tornheader");
    write_entries(&tmp.0, 1..=4, 1);
    let segment = only_segment(&tmp.0);
    let whole_len = fs::metadata(&segment).unwrap().len();
    // The crash left fewer bytes than a frame header: its checksum cannot be
    // checked, and nothing after it was ever written.
    let mut frame = Vec::new();
    entry(5, 1).encode_into(&mut frame);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&frame[..7]).unwrap();
    drop(file);
    assert_eq!(indexes(&tmp.0), vec![1, 2, 3, 4]);
    assert_eq!(fs::metadata(&segment).unwrap().len(), whole_len);
}

#[test]
fn conflicting_entries_replace_the_suffix() {
    let tmp = TempDir::new("conflict");
    write_entries(&tmp.0, 1..=5, 1);
    let (mut wal, _) = Wal::open(&tmp.0, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    wal.append(&[entry(3, 2), entry(4, 2)]).unwrap();
    wal.sync().unwrap();
    let (_, recovered) = Wal::open(&tmp.0, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    let got: Vec<(u64, u64)> = recovered
        .entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(got, vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(
        recovered.hard_state,
        HardState {
            term: 1,
            vote: 1,
            commit: 2
        }
    );
}

#[test]
fn segments_roll_and_compaction_removes_old_ones() {
    let tmp = TempDir::new("segments");
    let (mut wal, _) = Wal::open(&tmp.0, (0, 0), 256).unwrap();
    for i in 1..=40 {
        wal.append(&[entry(i, 1)]).unwrap();
        wal.append(&[Record::HardState(HardState {
            term: 1,
            vote: 1,
            commit: i,
        })])
        .unwrap();
    }
    wal.sync().unwrap();
    let segments_before = wal.segment_count();
    assert!(segments_before > 3, "{segments_before}");
    wal.compact(30, 1).unwrap();
    assert!(wal.segment_count() < segments_before);
    drop(wal);
    let (_, recovered) = Wal::open(&tmp.0, (30, 1), 256).unwrap();
    assert_eq!(
        recovered
            .entries
            .iter()
            .map(|e| e.index)
            .collect::<Vec<_>>(),
        (31..=40).collect::<Vec<_>>()
    );
    assert_eq!(recovered.hard_state.commit, 40);
    assert_eq!(recovered.mark, (30, 1));
}

#[test]
fn snapshot_with_other_term_discards_the_log() {
    let tmp = TempDir::new("install");
    write_entries(&tmp.0, 1..=8, 1);
    let (mut wal, _) = Wal::open(&tmp.0, (0, 0), SEGMENT_BYTES_MAX).unwrap();
    wal.compact(6, 2).unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(&tmp.0, (6, 2), SEGMENT_BYTES_MAX).unwrap();
    assert!(recovered.entries.is_empty());
    assert_eq!(recovered.mark, (6, 2));
}

#[test]
fn missing_middle_segment_refuses() {
    let tmp = TempDir::new("gap");
    let (mut wal, _) = Wal::open(&tmp.0, (0, 0), 128).unwrap();
    for i in 1..=20 {
        wal.append(&[entry(i, 1)]).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    fs::remove_file(tmp.0.join(format!("{:020}.wal", 2))).unwrap();
    let err = Wal::open(&tmp.0, (0, 0), 128)
        .err()
        .expect("a missing segment must refuse to open");
    assert!(
        matches!(err, WalError::SegmentMissing { seq: 2, .. }),
        "{err}"
    );
}
