//! The snapshot store: one file, replaced atomically.
//!
//! Layout: `[magic 8][index u64][term u64][body_len u64][crc32c(body) u32][body]`,
//! the body `[voters u32][voter u64 ...][learners u32][learner u64 ...][data]`:
//! the configuration in force at `index` travels with the state. A version-1
//! file (`FLSNAP01`, before membership changes) has the data as its body and
//! no configuration; it loads with none (the bootstrap voters).
//! Written to a temporary file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old or the new snapshot.
//! A failed save is returned, never retried (the node stops); a file that
//! fails its checks refuses to load, naming the file and the offset of the
//! part that failed.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bugs::Bugs;

const MAGIC: &[u8; 8] = b"FLSNAP02";
const MAGIC_V1: &[u8; 8] = b"FLSNAP01";
/// Ids in each of the voter and learner lists, at most.
const MEMBERS_MAX: usize = 4096;
const HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;
/// Where the header's body length sits (after the magic, index and term).
const BODY_LEN_OFFSET: usize = 8 + 8 + 8;
const FILE_NAME: &str = "snapshot.bin";
const TEMP_NAME: &str = "snapshot.tmp";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub index: u64,
    pub term: u64,
    /// The configuration at `index`; empty voters: not recorded (version 1).
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A step of `save` failed (`action`: write, fsync, rename, directory
    /// fsync): the node stops; nothing that depends on the snapshot was
    /// acknowledged.
    #[error("snapshot {action} failed on {path}: {source}; stopping: nothing unsynced was acknowledged")]
    Save {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot corrupt: {path} at offset {offset}: {reason}; refusing to start")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

pub struct SnapshotStore {
    dir: PathBuf,
    /// Planted bugs: `wal-ignore-crc` (`load` ignores a checksum
    /// mismatch) and `fsync-error-ignored` (`save` carries on after a
    /// failed fsync, as the WAL does).
    bugs: Bugs,
}

impl SnapshotStore {
    pub fn new(dir: &Path) -> Result<SnapshotStore, SnapshotError> {
        SnapshotStore::with_bugs(dir, Bugs::default())
    }

    /// `new` for a node running with planted bugs (`wal-ignore-crc`,
    /// `fsync-error-ignored`).
    pub fn with_bugs(dir: &Path, bugs: Bugs) -> Result<SnapshotStore, SnapshotError> {
        crate::wal::create_dir_durably(dir).map_err(|source| SnapshotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            bugs,
        })
    }

    /// Writes `snapshot` durably in place of the last one. A failure is
    /// returned, never retried: the caller must stop.
    pub fn save(&self, snapshot: &StoredSnapshot) -> Result<(), SnapshotError> {
        let temp = self.dir.join(TEMP_NAME);
        let target = self.dir.join(FILE_NAME);
        let failed = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Save { action, path, source }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temp)
            .map_err(failed("write", &temp))?;
        file.write_all(&encode(snapshot)).map_err(failed("write", &temp))?;
        self.bugs.fsync_result(file.sync_all(), "snapshot", &temp).map_err(failed("fsync", &temp))?;
        drop(file);
        fs::rename(&temp, &target).map_err(failed("rename", &target))?;
        let dir = File::open(&self.dir).map_err(failed("directory fsync", &self.dir))?;
        self.bugs.fsync_result(dir.sync_all(), "snapshot", &self.dir).map_err(failed("directory fsync", &self.dir))
    }

    /// The refusal for a loaded snapshot whose state-machine data (the last
    /// `data_bytes` of the file) does not decode.
    pub fn data_corrupt(&self, data_bytes: usize, reason: String) -> SnapshotError {
        let path = self.dir.join(FILE_NAME);
        let file_bytes = fs::metadata(&path).map_or(0, |m| m.len());
        let offset = file_bytes.saturating_sub(data_bytes as u64);
        SnapshotError::Corrupt { path, offset, reason }
    }

    /// The last saved snapshot, or `None` when none was ever saved.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, SnapshotError> {
        let path = self.dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        decode(&bytes, self.bugs.wal_ignore_crc)
            .map(Some)
            .map_err(|(offset, reason)| SnapshotError::Corrupt { path, offset, reason: reason.to_string() })
    }
}

fn encode(s: &StoredSnapshot) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + 8 * (s.voters.len() + s.learners.len()) + s.data.len());
    for ids in [&s.voters, &s.learners] {
        body.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        ids.iter().for_each(|id| body.extend_from_slice(&id.to_le_bytes()));
    }
    body.extend_from_slice(&s.data);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&s.index.to_le_bytes());
    out.extend_from_slice(&s.term.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// One id list of a body: (ids, the rest).
fn take_ids(body: &[u8]) -> Result<(Vec<u64>, &[u8]), &'static str> {
    let count_bytes = body.get(..4).ok_or("membership cut short")?;
    let count = u32::from_le_bytes(count_bytes.try_into().expect("4 bytes")) as usize;
    if count > MEMBERS_MAX {
        return Err("membership list too long");
    }
    let ids_bytes = body.get(4..4 + 8 * count).ok_or("membership cut short")?;
    let ids = ids_bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
    Ok((ids, &body[4 + 8 * count..]))
}

/// Decodes a snapshot file; an error is the offset of the part that
/// failed and why. `checksum_ignored` is the planted `wal-ignore-crc` bug.
fn decode(bytes: &[u8], checksum_ignored: bool) -> Result<StoredSnapshot, (u64, &'static str)> {
    let version_1 = bytes.get(0..8) == Some(&MAGIC_V1[..]);
    if bytes.len() < HEADER_BYTES || (&bytes[0..8] != MAGIC && !version_1) {
        return Err((0, "bad header"));
    }
    let u64_at = |at: usize| {
        u64::from_le_bytes(
            bytes[at..at + 8]
                .try_into()
                .expect("header length was checked"),
        )
    };
    let (index, term, data_len) = (u64_at(8), u64_at(16), u64_at(BODY_LEN_OFFSET));
    let crc = u32::from_le_bytes(bytes[32..36].try_into().expect("header length was checked"));
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != data_len {
        return Err((BODY_LEN_OFFSET as u64, "length mismatch"));
    }
    if crc32c::crc32c(body) != crc {
        if !checksum_ignored {
            return Err((HEADER_BYTES as u64, "checksum mismatch"));
        }
        tracing::warn!(index, term, "snapshot used despite a checksum mismatch (planted bug wal-ignore-crc)");
    }
    if version_1 {
        let (voters, learners) = (Vec::new(), Vec::new());
        return Ok(StoredSnapshot { index, term, voters, learners, data: body.to_vec() });
    }
    let offset_of = |part: &[u8]| (bytes.len() - part.len()) as u64;
    let (voters, rest) = take_ids(body).map_err(|reason| (offset_of(body), reason))?;
    let (learners, data) = take_ids(rest).map_err(|reason| (offset_of(rest), reason))?;
    Ok(StoredSnapshot { index, term, voters, learners, data: data.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_replaces_and_load_verifies() {
        let dir = std::env::temp_dir().join(format!("fl-snap-{}", std::process::id()));
        let store = SnapshotStore::new(&dir).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let first = StoredSnapshot {
            index: 5,
            term: 1,
            voters: vec![1, 2, 3],
            learners: vec![],
            data: b"one".to_vec(),
        };
        store.save(&first).unwrap();
        let second = StoredSnapshot {
            index: 9,
            term: 2,
            voters: vec![2, 3, 4],
            learners: vec![5],
            data: b"two!".to_vec(),
        };
        store.save(&second).unwrap();
        assert_eq!(store.load().unwrap(), Some(second));
        assert!(!dir.join(TEMP_NAME).exists());
        let path = dir.join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        let refusal = store.load().unwrap_err();
        assert!(matches!(
            &refusal,
            SnapshotError::Corrupt { offset, reason, .. }
                if *offset == HEADER_BYTES as u64 && reason == "checksum mismatch"
        ));
        let message = refusal.to_string();
        let expected = format!("snapshot corrupt: {} at offset {HEADER_BYTES}: checksum mismatch; refusing to start", path.display());
        assert_eq!(message, expected);
        // The planted `wal-ignore-crc` bug loads the flipped byte as data.
        let trusting = SnapshotStore::with_bugs(&dir, Bugs::parse("wal-ignore-crc").unwrap()).unwrap();
        let loaded = trusting.load().unwrap().expect("a snapshot");
        assert_eq!(loaded.data, b"two ".to_vec(), "'!' with its lowest bit flipped");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn membership_damage_refuses_even_when_checksums_are_ignored() {
        let snapshot = StoredSnapshot { index: 3, term: 1, voters: vec![1, 2], learners: vec![], data: b"{}".to_vec() };
        let mut bytes = encode(&snapshot);
        // The voter count's high byte: a list longer than the limit.
        bytes[HEADER_BYTES + 3] ^= 0x80;
        assert_eq!(decode(&bytes, false).unwrap_err(), (HEADER_BYTES as u64, "checksum mismatch"));
        assert_eq!(decode(&bytes, true).unwrap_err(), (HEADER_BYTES as u64, "membership list too long"));
        let mut bytes = encode(&snapshot);
        bytes[BODY_LEN_OFFSET] ^= 0x01;
        assert_eq!(decode(&bytes, true).unwrap_err(), (BODY_LEN_OFFSET as u64, "length mismatch"));
    }

    #[test]
    fn a_version_1_file_loads_without_a_configuration() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC_V1);
        for field in [7u64, 2, 3] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        bytes.extend_from_slice(&crc32c::crc32c(b"abc").to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let loaded = decode(&bytes, false).unwrap();
        assert_eq!((loaded.index, loaded.term, loaded.data), (7, 2, b"abc".to_vec()));
        assert!(loaded.voters.is_empty() && loaded.learners.is_empty());
        let mut cut = encode(&StoredSnapshot { index: 1, term: 1, voters: vec![1], learners: vec![], data: vec![] });
        cut.truncate(HEADER_BYTES + 6);
        assert!(decode(&cut, false).is_err(), "a body cut short is refused");
    }
}
