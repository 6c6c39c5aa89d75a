//! What a run hands on: its folder, its typed [`Results`] and its
//! [`Timeline`] (the history read back once). `faultline report DIR`
//! builds the same outcome from a stored folder.
use std::path::{Path, PathBuf};

use crate::plan::SpecFile;
use crate::report::Timeline;
use crate::results::{Counts, Results, ResultsError, HISTORY_FILE, RESULTS_FILE};
use crate::verdict::Checks;
use crate::EXIT_HARNESS_ERROR;

use super::RunError;

/// A finished run: a verdict, or a harness error after its folder existed.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub results: Results,
    pub timeline: Timeline,
}

/// A run that ended in a harness error or an interruption. `partial` is
/// what it left (its folder, the history so far, results.json naming the
/// error) when it got as far as a folder.
#[derive(Debug)]
pub struct RunFailure {
    pub error: RunError,
    pub partial: Option<Box<RunOutcome>>,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for RunFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl RunOutcome {
    /// A stored results folder: its results.json, or, for a run killed
    /// before it wrote one, what its spec and seed say, with that as the
    /// error. The history is read once.
    pub fn load(dir: &Path) -> Result<RunOutcome, ResultsError> {
        let history = dir.join(HISTORY_FILE);
        let finished = dir.join(RESULTS_FILE).is_file();
        if !finished && !history.is_file() {
            return Err(ResultsError::NotAResultsFolder { path: dir.to_path_buf() });
        }
        let timeline = match history.is_file() {
            true => Timeline::read(&history).map_err(|source| ResultsError::Read { path: history, source })?,
            false => Timeline::default(),
        };
        let results = match finished {
            true => Results::load(dir)?,
            false => Results {
                start_unix_ns: timeline.start_unix_ns,
                hosts: timeline.hosts.clone(),
                ..unfinished(dir, timeline.counts)
            },
        };
        Ok(RunOutcome { dir: dir.to_path_buf(), results, timeline })
    }
}

/// The results of a run that died without writing results.json.
fn unfinished(dir: &Path, counts: Counts) -> Results {
    let spec = SpecFile::read(&dir.join("spec.yaml")).ok();
    let seed = std::fs::read_to_string(dir.join("seed")).ok().and_then(|text| text.trim().parse().ok());
    let spec_seed = spec.as_ref().and_then(|spec| spec.seed);
    let name = spec.as_ref().map_or_else(|| dir.display().to_string(), |spec| spec.name.clone());
    Results {
        name,
        seed: seed.or(spec_seed).unwrap_or(0),
        system: spec.as_ref().map_or_else(String::new, |spec| spec.cluster.system.clone()),
        verdict: None,
        exit_code: EXIT_HARNESS_ERROR,
        error: Some("the run did not finish (results.json is missing)".to_string()),
        reasons: Vec::new(),
        counts,
        workload: spec.as_ref().map_or_else(String::new, |spec| spec.workload.kind.clone()),
        nemesis: spec.as_ref().map_or_else(Vec::new, |spec| spec.nemesis.faults.clone()),
        nodes: spec.as_ref().map_or(0, |spec| spec.cluster.nodes),
        time_limit_ms: 0,
        elapsed_ms: 0,
        start_unix_ns: None,
        hosts: Default::default(),
        run_dir: dir.to_path_buf(),
        checks: Checks::default(),
        proxy: Default::default(),
    }
}
