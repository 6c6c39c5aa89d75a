//! `shrink.json`: what a shrink searched and found, and the before/after
//! table the command prints and the report shows.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Candidate;
use crate::replay::Outcome;

/// shrink.json: the search and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkRecord {
    pub original: Outcome,
    pub before: Summary,
    /// The confirmed result: the smallest accepted candidate that failed
    /// the same way in at least half of its confirmation runs.
    pub after: Summary,
    /// The smallest candidate the search saw fail (once may be luck).
    pub smallest_failing_once: Summary,
    pub runs_per_candidate: u32,
    pub runs_per_candidate_chosen_by: String,
    pub candidates_tried: u32,
    pub out_of_budget: bool,
    pub wall_ms: u64,
    pub budget_ms: u64,
    /// Runs of the minimal test that failed the same way, of those made.
    pub reproduced: u32,
    pub reproduction_runs: u32,
    /// Where the minimal spec.yaml and schedule.jsonl are.
    pub dir: PathBuf,
}

/// One line of the before/after table (the command's and the report's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub what: &'static str,
    pub before: String,
    pub after: String,
}

impl ShrinkRecord {
    /// Before and after: events, fault time, time limit, keys, clients,
    /// rate, nodes and the reproduction rate.
    pub fn rows(&self) -> Vec<Row> {
        let (b, a) = (&self.before, &self.after);
        let seconds = |ms: u64| format!("{:.1}s", ms as f64 / 1e3);
        let row = |what, before: String, after: String| Row { what, before, after };
        let reproduced = match self.reproduction_runs {
            0 => "- (nothing smaller confirmed: the original)".to_string(),
            runs => format!("{} of {runs}", self.reproduced),
        };
        vec![
            row("events", b.events.to_string(), format!("{}  ({})", a.events, a.faults.join(", "))),
            row("fault time", seconds(b.fault_ms), seconds(a.fault_ms)),
            row("time limit", seconds(b.time_limit_ms), seconds(a.time_limit_ms)),
            row("keys", b.keys_active.to_string(), a.keys_active.to_string()),
            row("clients", b.concurrency.to_string(), a.concurrency.to_string()),
            row("rate", format!("{}/s", b.rate_per_s), format!("{}/s", a.rate_per_s)),
            row("nodes", b.nodes.to_string(), a.nodes.to_string()),
            row("reproduced", "the original".to_string(), reproduced),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub events: usize,
    pub faults: Vec<String>,
    pub fault_ms: u64,
    pub time_limit_ms: u64,
    pub keys_active: u32,
    pub concurrency: usize,
    pub rate_per_s: f64,
    #[serde(default)]
    pub nodes: usize,
}

impl Summary {
    pub(super) fn of(candidate: &Candidate) -> Summary {
        Summary {
            events: candidate.events.len(),
            faults: candidate.events.iter().map(|e| e.fault.name().to_string()).collect(),
            fault_ms: candidate.events.iter().map(|e| e.duration_ms).sum(),
            time_limit_ms: candidate.time_limit_ms,
            keys_active: candidate.keys_active,
            concurrency: candidate.concurrency,
            rate_per_s: candidate.rate_per_s,
            nodes: candidate.nodes,
        }
    }
}
