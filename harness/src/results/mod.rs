//! The results folder and the one [`Results`] type: written as
//! `results.json` (and `summary.txt`, its text for people) at the end of a
//! run, read back with the same serde type by `faultline report`.
use std::path::{Path, PathBuf};

use faultline_checkers::Verdict;
use serde::{Deserialize, Serialize};

use crate::proxy::ProxyStats;
use crate::verdict::Checks;
use crate::{EXIT_HARNESS_ERROR, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};

pub mod store;
mod summary;

pub use store::{RunDir, StoreError};

/// The file name of the results inside a results folder.
pub const RESULTS_FILE: &str = "results.json";
/// The file name of the history inside a results folder.
pub const HISTORY_FILE: &str = "history.jsonl";

/// What a run concluded, or the error that ended it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub name: String,
    pub seed: u64,
    pub system: String,
    /// `None` when the run ended in a harness error before any verdict.
    pub verdict: Option<Verdict>,
    pub exit_code: u8,
    /// The harness error or interruption that ended the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the run is not valid, one line per failing check.
    pub reasons: Vec<String>,
    pub counts: Counts,
    pub workload: String,
    pub nemesis: Vec<String>,
    pub nodes: usize,
    pub time_limit_ms: u64,
    pub elapsed_ms: u64,
    /// The wall-clock time the history's `time_ns` counts from, in
    /// nanoseconds since 1970 (also in the history's header line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_unix_ns: Option<u64>,
    /// The host each node ran on, by node name (`n1`), when the nodes ran
    /// on hosts (also in the history's header).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hosts: std::collections::BTreeMap<String, String>,
    pub run_dir: PathBuf,
    /// Verdict and details (counterexamples included) per check.
    pub checks: Checks,
    /// What the fault proxy saw (connections, cuts, bytes).
    pub proxy: ProxyStats,
}

/// Operations and nemesis actions in the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub invoke: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub nemesis: u64,
}

/// Why a results folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path} is not a results folder (no results.json and no history.jsonl)")]
    NotAResultsFolder { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not faultline's results ({source}); was it written by another version?")]
    Json { path: PathBuf, source: serde_json::Error },
}

pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Valid => EXIT_VALID,
        Verdict::Invalid => EXIT_INVALID,
        Verdict::Unknown => EXIT_UNKNOWN,
    }
}

impl Results {
    /// `n1 on 10.0.0.1, n2 on 10.0.0.2`, in node order (n10 after n9).
    pub fn hosts_line(&self) -> String {
        let mut pairs: Vec<(&String, &String)> = self.hosts.iter().collect();
        pairs.sort_by_key(|(node, _)| (node.len(), node.as_str()));
        pairs.iter().map(|(node, host)| format!("{node} on {host}")).collect::<Vec<_>>().join(", ")
    }

    /// The exit code of these results: the verdict's, or a harness error.
    pub fn exit_code_of(verdict: Option<Verdict>) -> u8 {
        verdict.map_or(EXIT_HARNESS_ERROR, exit_code)
    }

    /// Reads `results.json` of a results folder.
    pub fn load(run_dir: &Path) -> Result<Results, ResultsError> {
        let path = run_dir.join(RESULTS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ResultsError::Read { path: path.clone(), source })?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Json { path, source })
    }

    /// Writes `results.json` and `summary.txt` into the run's folder.
    pub fn save(&self, run_dir: &RunDir) -> Result<(), StoreError> {
        // Plain data with string keys: serializing cannot fail.
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        run_dir.write(RESULTS_FILE, &json)?;
        run_dir.write("summary.txt", &self.summary())
    }

    /// Connections the proxy could not tie to a node took no partition or
    /// link fault: say so, since the faults were weaker than asked.
    pub fn proxy_warning(&self) -> Option<String> {
        let unattributed = self.proxy.connections_unattributed;
        (unattributed > 0).then(|| {
            format!(
                "{unattributed} of {} proxied connections could not be tied to the node that opened them; \
                 partitions and link faults did not apply to them",
                self.proxy.connections_accepted
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{compose, Check, CheckDetails, Liveness};

    #[test]
    fn results_round_trip_through_results_json() {
        let liveness = Liveness { timeout_ms: 5, recovered_after_ms: Some(1), attempts: 1, ..Liveness::default() };
        let notes = Check { name: "mine".into(), verdict: Verdict::Invalid, reason: Some("x".into()), details: CheckDetails::Notes { lines: vec!["a".into()] } };
        let results = Results {
            name: "t".into(),
            seed: 3,
            system: "faultline-node".into(),
            verdict: Some(Verdict::Invalid),
            exit_code: 1,
            error: None,
            reasons: vec!["x".into()],
            counts: Counts { invoke: 2, ok: 1, fail: 0, info: 1, nemesis: 1 },
            workload: "kv".into(),
            nemesis: vec!["kill".into()],
            nodes: 3,
            time_limit_ms: 1_000,
            elapsed_ms: 1_500,
            start_unix_ns: Some(1_764_800_000_000_000_000),
            hosts: Default::default(),
            run_dir: "store/t/1".into(),
            checks: compose(vec![liveness.check(), notes]),
            proxy: ProxyStats::default(),
        };
        let dir = std::env::temp_dir().join(format!("faultline-results-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        results.save(&RunDir { path: dir.clone() }).unwrap();
        assert_eq!(Results::load(&dir).unwrap(), results);
        assert!(std::fs::read_to_string(dir.join("summary.txt")).unwrap().contains("INVALID"));
        std::fs::write(dir.join(RESULTS_FILE), "{\"name\": 1}").unwrap();
        assert!(Results::load(&dir).unwrap_err().to_string().contains("another version"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
