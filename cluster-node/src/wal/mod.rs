//! The write-ahead log: segmented files of CRC32C-framed records (the
//! header carries its own checksum, see `record`).
//!
//! Recovery truncates a torn tail of the last segment (the end of a write that
//! never completed, which was therefore never fsynced nor acknowledged) and
//! refuses to start on damage anywhere else, naming the file and offset.
//! A failed write or fsync is returned, never retried: the server stops on
//! it (after a failed fsync the kernel may have dropped the dirty pages, so
//! a second fsync that succeeds proves nothing).
//! Conflict truncation needs no separate record: replaying entry `i` drops
//! every entry at or after `i`. Group commit happens one level up: the server
//! appends everything one Raft `Ready` carries and calls `sync` once.
mod record;
mod replay;

pub use record::{FrameError, HardState, Record, WalEntry};
pub use replay::Recovered;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bugs::Bugs;

/// Default segment size after which the next append starts a new file.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Appending failed: the node stops; nothing in the failed write was
    /// acknowledged (acknowledgements wait for the fsync after it).
    #[error("WAL write failed on {path}: {source}; stopping: nothing unsynced was acknowledged")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An fsync of a segment (or of the WAL directory) failed: the node
    /// stops; whatever was written since the last successful fsync was
    /// never acknowledged.
    #[error("WAL fsync failed on {path}: {source}; stopping: nothing unsynced was acknowledged")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WAL corrupt: {path} at offset {offset}: {reason}; refusing to start")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("WAL segment {seq} is missing before {path}; refusing to start")]
    SegmentMissing { seq: u64, path: PathBuf },
    #[error("WAL log gap in {path}: expected entry {expected}, found {found}; refusing to start")]
    Gap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Sync {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Copy, Debug)]
struct SegmentMeta {
    seq: u64,
    /// Highest entry index written into this segment; 0 when it holds none.
    index_max: u64,
}

pub struct Wal {
    dir: PathBuf,
    file: File,
    segments: Vec<SegmentMeta>,
    segment_bytes: u64,
    segment_bytes_max: u64,
    /// Written at the head of every new segment so older segments can be removed.
    hard_state: HardState,
    mark: (u64, u64),
    buffer: Vec<u8>,
    /// Planted bugs; this reads `wal_ignore_crc` and `fsync_error_ignored`.
    bugs: Bugs,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and replays it on top of the
    /// snapshot at `base` = (index, term); `(0, 0)` when there is no snapshot.
    pub fn open(
        dir: &Path,
        base: (u64, u64),
        segment_bytes_max: u64,
    ) -> Result<(Wal, Recovered), WalError> {
        Wal::open_with_bugs(dir, base, segment_bytes_max, Bugs::default())
    }

    /// `open` for a node running with planted bugs (`wal-ignore-crc` changes
    /// recovery, `fsync-error-ignored` changes `sync`).
    pub fn open_with_bugs(
        dir: &Path,
        base: (u64, u64),
        segment_bytes_max: u64,
        bugs: Bugs,
    ) -> Result<(Wal, Recovered), WalError> {
        assert!(segment_bytes_max > 0, "segment_bytes_max must be positive");
        create_dir_durably(dir).map_err(io_error(dir))?;
        let seqs = list_segments(dir)?;
        let mut segments = Vec::with_capacity(seqs.len());
        let mut replay = replay::Replay::new(base);
        for (position, &seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, seq);
            let is_last = position + 1 == seqs.len();
            let records = read_segment(&path, is_last, bugs.wal_ignore_crc)?;
            let index_max = replay.apply_all(&path, records)?;
            segments.push(SegmentMeta { seq, index_max });
        }
        let recovered = replay.finish(dir)?;
        let mut wal = match segments.last().copied() {
            Some(last) => Wal::reopen_last(dir, segments, last.seq, segment_bytes_max)?,
            None => Wal::create_first(dir, segment_bytes_max)?,
        };
        wal.hard_state = recovered.hard_state;
        wal.mark = recovered.mark;
        wal.bugs = bugs;
        Ok((wal, recovered))
    }

    fn reopen_last(
        dir: &Path,
        segments: Vec<SegmentMeta>,
        seq: u64,
        segment_bytes_max: u64,
    ) -> Result<Wal, WalError> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let segment_bytes = file.metadata().map_err(io_error(&path))?.len();
        Ok(Wal::with_file(
            dir,
            file,
            segments,
            segment_bytes,
            segment_bytes_max,
        ))
    }

    fn create_first(dir: &Path, segment_bytes_max: u64) -> Result<Wal, WalError> {
        let file = create_segment(dir, 1)?;
        let segments = vec![SegmentMeta {
            seq: 1,
            index_max: 0,
        }];
        Ok(Wal::with_file(dir, file, segments, 0, segment_bytes_max))
    }

    fn with_file(
        dir: &Path,
        file: File,
        segments: Vec<SegmentMeta>,
        segment_bytes: u64,
        segment_bytes_max: u64,
    ) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            file,
            segments,
            segment_bytes,
            segment_bytes_max,
            hard_state: HardState::default(),
            mark: (0, 0),
            buffer: Vec::new(),
            bugs: Bugs::default(),
        }
    }

    /// Writes `records` in one `write` call; they are durable only after `sync`.
    pub fn append(&mut self, records: &[Record]) -> Result<(), WalError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.segment_bytes >= self.segment_bytes_max {
            self.roll()?;
        }
        self.buffer.clear();
        for r in records {
            r.encode_into(&mut self.buffer);
            self.note(r);
        }
        let path = self.current_path();
        self.file.write_all(&self.buffer).map_err(write_error(&path))?;
        self.segment_bytes += self.buffer.len() as u64;
        Ok(())
    }

    fn note(&mut self, r: &Record) {
        match r {
            Record::Entry(e) => {
                let last = self
                    .segments
                    .last_mut()
                    .expect("the WAL always has a current segment");
                last.index_max = last.index_max.max(e.index);
            }
            Record::HardState(hs) => self.hard_state = *hs,
            Record::SnapshotMark { index, term } => self.mark = (*index, *term),
        }
    }

    /// Makes every appended record durable (fdatasync also persists the file
    /// size). A failure is returned, never retried: the caller must stop.
    pub fn sync(&mut self) -> Result<(), WalError> {
        let path = self.current_path();
        // Under the planted `fsync-error-ignored` bug the unsynced records
        // are treated as durable and acknowledged.
        let synced = self.bugs.fsync_result(self.file.sync_data(), "WAL", &path);
        synced.map_err(|source| WalError::Sync { path, source })
    }

    /// Records that the log is compacted up to `index` (a snapshot covering it
    /// is already durable) and removes the segments that only hold older entries.
    pub fn compact(&mut self, index: u64, term: u64) -> Result<(), WalError> {
        self.append(&[Record::SnapshotMark { index, term }])?;
        self.sync()?;
        let current = self.segments.len() - 1;
        let removable = self.segments[..current]
            .iter()
            .take_while(|s| s.index_max <= index)
            .count();
        for segment in self.segments.drain(..removable) {
            let path = segment_path(&self.dir, segment.seq);
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
        if removable > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn roll(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let seq = self
            .segments
            .last()
            .expect("the WAL always has a current segment")
            .seq
            + 1;
        self.file = create_segment(&self.dir, seq)?;
        self.segments.push(SegmentMeta { seq, index_max: 0 });
        self.segment_bytes = 0;
        let head = [
            Record::HardState(self.hard_state),
            Record::SnapshotMark {
                index: self.mark.0,
                term: self.mark.1,
            },
        ];
        self.append(&head)?;
        self.sync()
    }

    fn current_path(&self) -> PathBuf {
        segment_path(
            &self.dir,
            self.segments
                .last()
                .expect("the WAL always has a current segment")
                .seq,
        )
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut seqs = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error(dir))? {
        let name = item.map_err(io_error(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(WalError::SegmentMissing {
                seq: pair[0] + 1,
                path: segment_path(dir, pair[1]),
            });
        }
    }
    Ok(seqs)
}

fn create_segment(dir: &Path, seq: u64) -> Result<File, WalError> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_error(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Creates `dir` if missing and makes its entry in the parent durable, so a
/// crash cannot take away a directory whose files were fsynced.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

/// Makes a created, renamed or removed directory entry durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    let handle = File::open(dir).map_err(io_error(dir))?;
    handle.sync_all().map_err(sync_error(dir))
}

/// Reads one segment; a torn tail of the last segment is cut off on disk.
/// `checksums_ignored` is the planted `wal-ignore-crc` bug: a frame the
/// correct node refuses is used if its length frames it and its payload
/// decodes, skipped if only the payload does not decode.
fn read_segment(path: &Path, is_last: bool, checksums_ignored: bool) -> Result<Vec<Record>, WalError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        match Record::decode(rest) {
            Ok((record, used)) => {
                records.push(record);
                offset += used;
            }
            Err(e) if is_last && is_torn_tail(rest, &e) => {
                tracing::warn!(path = %path.display(), offset, dropped_bytes = rest.len(), "WAL torn tail truncated");
                truncate_file(path, offset as u64)?;
                return Ok(records);
            }
            Err(e) => {
                let salvaged = checksums_ignored.then(|| record::decode_ignoring_checksums(rest)).flatten();
                let Some((salvaged, used)) = salvaged else {
                    return Err(WalError::Corrupt { path: path.to_path_buf(), offset: offset as u64, reason: format!("{e:?}") });
                };
                match salvaged {
                    Ok(record) => {
                        tracing::warn!(path = %path.display(), offset, error = ?e, "WAL record used despite failing its check (planted bug wal-ignore-crc)");
                        records.push(record);
                    }
                    Err(undecodable) => {
                        tracing::warn!(path = %path.display(), offset, error = ?undecodable, "WAL record skipped: it does not decode (planted bug wal-ignore-crc)");
                    }
                }
                offset += used;
            }
        }
    }
    Ok(records)
}

/// A torn write leaves a short frame (the file ends inside the header, or
/// after an intact header whose length runs past the end), or a bad frame
/// followed only by zeroes (the file grew but its blocks were never written).
/// Anything else is damage: in particular a header that fails its checksum is
/// not trusted to say how long the record is, so a `Short` can only come from
/// a header that is either incomplete or intact.
fn is_torn_tail(rest: &[u8], error: &FrameError) -> bool {
    let all_zero = |b: &[u8]| b.iter().all(|&x| x == 0);
    match error {
        FrameError::Short => true,
        FrameError::BadHeader => all_zero(rest),
        // The header checksum vouches for this length: the writer put it there.
        FrameError::BadLength(_) => false,
        FrameError::BadChecksum | FrameError::BadPayload(_) => {
            let payload_len =
                u32::from_le_bytes(rest[0..4].try_into().expect("frame header was read")) as usize;
            all_zero(&rest[record::FRAME_HEADER_BYTES + payload_len..])
        }
    }
}

fn truncate_file(path: &Path, len: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    file.set_len(len).map_err(write_error(path))?;
    file.sync_all().map_err(sync_error(path))
}
