//! `summary.txt` and the end of `faultline test`'s output: the results in
//! a few aligned lines for a person.
use std::fmt::Write;

use super::Results;

impl Results {
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let counts = &self.counts;
        let verdict = self.verdict.map_or("error", |verdict| verdict.name());
        let _ = writeln!(text, "faultline test {}: {}", self.name, verdict.to_uppercase());
        let _ = writeln!(text, "seed        {}", self.seed);
        let nemesis = if self.nemesis.is_empty() { "none".to_string() } else { self.nemesis.join(",") };
        let _ = writeln!(
            text,
            "cluster     {} nodes of {}, workload {}, nemesis {nemesis}",
            self.nodes, self.system, self.workload
        );
        if !self.hosts.is_empty() {
            let _ = writeln!(text, "hosts       {}", self.hosts_line());
        }
        let _ = writeln!(
            text,
            "operations  {} invoked: {} ok, {} fail, {} info; {} nemesis actions",
            counts.invoke, counts.ok, counts.fail, counts.info, counts.nemesis
        );
        let _ = writeln!(text, "time        {:.1} s (time limit {:.1} s)", self.elapsed_ms as f64 / 1e3, self.time_limit_ms as f64 / 1e3);
        if let Some(error) = &self.error {
            let _ = writeln!(text, "error       {error}");
        }
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
