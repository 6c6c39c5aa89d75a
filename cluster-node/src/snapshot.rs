//! The snapshot store: one file, replaced atomically.
//!
//! Layout: `[magic 8][index u64][term u64][data_len u64][crc32c(data) u32][data]`.
//! Written to a temporary file, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves either the old or the new snapshot.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FLSNAP01";
const HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;
const FILE_NAME: &str = "snapshot.bin";
const TEMP_NAME: &str = "snapshot.tmp";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub index: u64,
    pub term: u64,
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
    let mut out = Vec::with_capacity(HEADER_BYTES + s.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&s.index.to_le_bytes());
    out.extend_from_slice(&s.term.to_le_bytes());
    out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&s.data).to_le_bytes());
    out.extend_from_slice(&s.data);
    out
}

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, &'static str> {
    if bytes.len() < HEADER_BYTES || &bytes[0..8] != MAGIC {
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
    let data = &bytes[HEADER_BYTES..];
    if data.len() as u64 != data_len {
        return Err("length mismatch");
    }
    if crc32c::crc32c(data) != crc {
        return Err("checksum mismatch");
    }
    Ok(StoredSnapshot {
        index,
        term,
        data: data.to_vec(),
    })
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
            data: b"one".to_vec(),
        };
        store.save(&first).unwrap();
        let second = StoredSnapshot {
            index: 9,
            term: 2,
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
}
