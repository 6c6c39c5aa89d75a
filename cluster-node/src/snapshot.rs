//! The snapshot store: one file, replaced atomically.
//!
//! Layout: `[magic 8][index u64][term u64][body_len u64][crc32c(body) u32][body]`,
//! the body `[voters u32][voter u64 ...][learners u32][learner u64 ...][data]`:
//! the configuration in force at `index` travels with the state. A version-1
//! file (`FLSNAP01`, before membership changes) has the data as its body and
//! no configuration; it loads with none (the bootstrap voters).
//! Written to a temporary file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old or the new snapshot.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FLSNAP02";
const MAGIC_V1: &[u8; 8] = b"FLSNAP01";
/// Ids in each of the voter and learner lists, at most.
const MEMBERS_MAX: usize = 4096;
const HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;
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
    #[error("snapshot {path} is corrupt: {reason}; refusing to start")]
    Corrupt { path: PathBuf, reason: &'static str },
}

pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn new(dir: &Path) -> Result<SnapshotStore, SnapshotError> {
        crate::wal::create_dir_durably(dir).map_err(|source| SnapshotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn save(&self, snapshot: &StoredSnapshot) -> Result<(), SnapshotError> {
        let temp = self.dir.join(TEMP_NAME);
        let target = self.dir.join(FILE_NAME);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temp)
            .map_err(io(&temp))?;
        file.write_all(&encode(snapshot)).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        drop(file);
        fs::rename(&temp, &target).map_err(io(&target))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    /// The last saved snapshot, or `None` when none was ever saved.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, SnapshotError> {
        let path = self.dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        decode(&bytes)
            .map(Some)
            .map_err(|reason| SnapshotError::Corrupt { path, reason })
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

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, &'static str> {
    let version_1 = bytes.get(0..8) == Some(&MAGIC_V1[..]);
    if bytes.len() < HEADER_BYTES || (&bytes[0..8] != MAGIC && !version_1) {
        return Err("bad header");
    }
    let u64_at = |at: usize| {
        u64::from_le_bytes(
            bytes[at..at + 8]
                .try_into()
                .expect("header length was checked"),
        )
    };
    let (index, term, data_len) = (u64_at(8), u64_at(16), u64_at(24));
    let crc = u32::from_le_bytes(bytes[32..36].try_into().expect("header length was checked"));
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != data_len {
        return Err("length mismatch");
    }
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch");
    }
    if version_1 {
        let (voters, learners) = (Vec::new(), Vec::new());
        return Ok(StoredSnapshot { index, term, voters, learners, data: body.to_vec() });
    }
    let (voters, rest) = take_ids(body)?;
    let (learners, data) = take_ids(rest)?;
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
        assert!(matches!(
            store.load(),
            Err(SnapshotError::Corrupt {
                reason: "checksum mismatch",
                ..
            })
        ));
        fs::remove_dir_all(&dir).unwrap();
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
        let loaded = decode(&bytes).unwrap();
        assert_eq!((loaded.index, loaded.term, loaded.data), (7, 2, b"abc".to_vec()));
        assert!(loaded.voters.is_empty() && loaded.learners.is_empty());
        let mut cut = encode(&StoredSnapshot { index: 1, term: 1, voters: vec![1], learners: vec![], data: vec![] });
        cut.truncate(HEADER_BYTES + 6);
        assert!(decode(&cut).is_err(), "a body cut short is refused");
    }
}
