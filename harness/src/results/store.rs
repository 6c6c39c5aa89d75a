//! The results folder of one run: `<store>/<test-name>/<YYYYmmddTHHMMSS>/`,
//! with a `latest` symlink beside it (Jepsen's `store`).
//!
//! Files: `spec.yaml` and `seed` at the start, `history.jsonl` streamed
//! during the run, `nodes/` (node data and logs), and `results.json` plus
//! `summary.txt` at the end, so a run that dies halfway still leaves what it
//! had.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("store: {0} runs of this test started in the same second")]
    Crowded(u32),
}

/// Runs of one test started within the same second get `-1`, `-2`, ...
const SAME_SECOND_RUNS_MAX: u32 = 100;

/// A created run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

impl RunDir {
    /// Create `<store>/<name>/<timestamp>/` for a run starting `now`.
    pub fn create(store: &Path, name: &str, now: SystemTime) -> Result<RunDir, StoreError> {
        let test_dir = store.join(name);
        std::fs::create_dir_all(&test_dir).map_err(io(&test_dir))?;
        let stamp = timestamp(now);
        for attempt in 0..SAME_SECOND_RUNS_MAX {
            let leaf = if attempt == 0 { stamp.clone() } else { format!("{stamp}-{attempt}") };
            let path = test_dir.join(leaf);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(StoreError::Io { path, source: error }),
            }
        }
        Err(StoreError::Crowded(SAME_SECOND_RUNS_MAX))
    }

    /// Point `<store>/<name>/latest` at this run (relative link, replaced
    /// atomically by a rename).
    pub fn update_latest(&self) -> Result<(), StoreError> {
        let parent = self.path.parent().ok_or_else(|| StoreError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("run folder has no parent"),
        })?;
        let leaf = self.path.file_name().unwrap_or_default();
        let temporary = parent.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(leaf, &temporary).map_err(io(&temporary))?;
        let latest = parent.join("latest");
        std::fs::rename(&temporary, &latest).map_err(io(&latest))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> Result<(), StoreError> {
        let path = self.file(name);
        std::fs::write(&path, contents).map_err(io(&path))
    }

    pub fn history_path(&self) -> PathBuf {
        self.file("history.jsonl")
    }

    /// Where the cluster keeps node data and logs.
    pub fn nodes_dir(&self) -> PathBuf {
        self.file("nodes")
    }
}

/// `YYYYmmddTHHMMSS` in UTC: humantime's RFC 3339 time without its
/// separators, so folder names sort by time.
pub fn timestamp(now: SystemTime) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(now).to_string();
    rfc3339.chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000");
        // 2024-02-29 12:34:56 UTC (a leap day).
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "20240229T123456");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(1_798_761_599)), "20261231T235959");
    }

    #[test]
    fn runs_get_distinct_folders_and_latest_follows() {
        let store = std::env::temp_dir().join(format!("faultline-store-test-{}", std::process::id()));
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let first = RunDir::create(&store, "t", now).unwrap();
        let second = RunDir::create(&store, "t", now).unwrap();
        assert_ne!(first.path, second.path);
        assert!(second.path.ends_with("20010909T014640-1"));
        first.update_latest().unwrap();
        second.update_latest().unwrap();
        second.write("seed", "7\n").unwrap();
        let via_latest = std::fs::read_to_string(store.join("t/latest/seed")).unwrap();
        assert_eq!(via_latest, "7\n");
        std::fs::remove_dir_all(&store).unwrap();
    }
}
