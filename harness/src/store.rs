//! The results folder of one run: `<store>/<test-name>/<YYYYmmddTHHMMSS>/`,
//! with a `latest` symlink beside it (Jepsen's `store`).
//!
//! Files: `spec.yaml` and `seed` at the start, `history.jsonl` streamed
//! during the run, `nodes/` (node data and logs), and `results.json` plus
//! `summary.txt` at the end, so a run that dies halfway still leaves what it
//! had.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// `YYYYmmddTHHMMSS` in UTC.
pub fn timestamp(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

/// Howard Hinnant's days-to-civil: proleptic Gregorian date of a day count
/// since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
