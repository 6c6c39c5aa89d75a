//! What a run concluded: `results.json` (serde) and `summary.txt`.
use std::fmt::Write;
use std::path::PathBuf;

use faultline_checkers::{Composed, Verdict};
use serde::Serialize;

use crate::proxy::ProxyStats;

use super::history::CountsSnapshot;
use crate::{EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub name: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub exit_code: u8,
    /// Why the run is not valid, one line per failing check.
    pub reasons: Vec<String>,
    pub counts: CountsSnapshot,
    pub workload: String,
    pub nemesis: Vec<String>,
    pub nodes: usize,
    pub time_limit_ms: u64,
    pub elapsed_ms: u64,
    pub run_dir: PathBuf,
    /// Verdict and details (counterexample included) per checker.
    pub checks: Composed,
    /// What the fault proxy saw (connections, cuts, bytes).
    pub proxy: ProxyStats,
}

pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Valid => EXIT_VALID,
        Verdict::Invalid => EXIT_INVALID,
        Verdict::Unknown => EXIT_UNKNOWN,
    }
}

impl Results {
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

    pub fn summary(&self) -> String {
        let mut text = String::new();
        let counts = &self.counts;
        let _ = writeln!(text, "faultline test {}: {}", self.name, self.verdict.name().to_uppercase());
        let _ = writeln!(text, "seed        {}", self.seed);
        let _ = writeln!(
            text,
            "cluster     {} nodes, workload {}, nemesis {}",
            self.nodes,
            self.workload,
            if self.nemesis.is_empty() { "none".to_string() } else { self.nemesis.join(",") }
        );
        let _ = writeln!(
            text,
            "operations  {} invoked: {} ok, {} fail, {} info; {} nemesis actions",
            counts.invoke, counts.ok, counts.fail, counts.info, counts.nemesis
        );
        let _ = writeln!(text, "time        {:.1} s (time limit {:.1} s)", self.elapsed_ms as f64 / 1e3, self.time_limit_ms as f64 / 1e3);
        for check in &self.checks.checkers {
            let _ = writeln!(text, "check       {:<24} {}", check.name, check.verdict.name());
        }
        for reason in &self.reasons {
            let _ = writeln!(text, "reason      {reason}");
        }
        if let Some(warning) = self.proxy_warning() {
            let _ = writeln!(text, "warning     {warning}");
        }
        let _ = writeln!(text, "results     {}", self.run_dir.display());
        text
    }
}
