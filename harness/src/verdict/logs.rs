//! Error lines in node logs: a panic, failed assertion or fatal error in
//! any node's log fails the run.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use super::{Check, CheckDetails};

/// Lines kept per run; the count of hits is still exact.
const HITS_KEPT_MAX: usize = 20;
/// Longest line kept in a hit, in bytes.
const HIT_LINE_BYTES_MAX: usize = 500;
/// Bytes of one log read at most (logs of a short test are far smaller).
const LOG_BYTES_MAX: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHit {
    pub path: PathBuf,
    pub line_number: u64,
    pub pattern: String,
    pub line: String,
}

/// What the scan of the node logs found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogScan {
    pub patterns: Vec<String>,
    /// Every matching line counts, kept or not.
    pub count: u64,
    /// The first `HITS_KEPT_MAX` matching lines.
    pub hits: Vec<LogHit>,
}

impl LogScan {
    /// All lines matching any pattern (substring match), the first
    /// `HITS_KEPT_MAX` kept, plus the total count.
    pub fn scan(paths: &[PathBuf], patterns: &[String]) -> LogScan {
        let mut hits = Vec::new();
        let mut count = 0;
        for path in paths {
            count += scan_log(path, patterns, &mut hits);
        }
        LogScan { patterns: patterns.to_vec(), count, hits }
    }

    pub fn check(&self) -> Check {
        let verdict = if self.count == 0 { Verdict::Valid } else { Verdict::Invalid };
        let reason = self.hits.first().map(|hit| {
            format!(
                "{} error line(s) in node logs, first {}:{}: {}",
                self.count,
                hit.path.display(),
                hit.line_number,
                hit.line.trim()
            )
        });
        Check { name: "node-logs".to_string(), verdict, reason, details: CheckDetails::NodeLogs(self.clone()) }
    }
}

fn scan_log(path: &Path, patterns: &[String], hits: &mut Vec<LogHit>) -> u64 {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut count = 0;
    let reader = BufReader::new(std::io::Read::take(file, LOG_BYTES_MAX));
    for (index, line) in reader.split(b'\n').enumerate() {
        let Ok(bytes) = line else { break };
        let line = String::from_utf8_lossy(&bytes);
        let Some(pattern) = patterns.iter().find(|p| !p.is_empty() && line.contains(p.as_str())) else {
            continue;
        };
        count += 1;
        if hits.len() < HITS_KEPT_MAX {
            let mut kept = line.to_string();
            if kept.len() > HIT_LINE_BYTES_MAX {
                let mut cut = HIT_LINE_BYTES_MAX;
                while !kept.is_char_boundary(cut) {
                    cut -= 1;
                }
                kept.truncate(cut);
            }
            hits.push(LogHit { path: path.to_path_buf(), line_number: index as u64 + 1, pattern: pattern.clone(), line: kept });
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_patterns_with_line_numbers() {
        let dir = std::env::temp_dir().join(format!("faultline-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clean = dir.join("n1.log");
        let broken = dir.join("n2.log");
        std::fs::write(&clean, "INFO started\nINFO leader elected\n").unwrap();
        std::fs::write(&broken, "INFO started\nthread 'main' panicked at src/raft.rs:10\nFATAL x\n").unwrap();
        let patterns = vec!["panicked at".to_string(), "FATAL".to_string()];
        let scan = LogScan::scan(std::slice::from_ref(&clean), &patterns);
        assert!(scan.hits.is_empty());
        assert_eq!(scan.check().verdict, Verdict::Valid);
        let scan = LogScan::scan(&[clean, broken.clone(), dir.join("missing.log")], &patterns);
        assert_eq!(scan.count, 2);
        assert_eq!(scan.hits[0].line_number, 2);
        assert_eq!(scan.hits[0].pattern, "panicked at");
        assert_eq!(scan.hits[1].path, broken);
        let check = scan.check();
        assert_eq!(check.verdict, Verdict::Invalid);
        assert!(check.reason.unwrap().contains("panicked at src/raft.rs:10"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
