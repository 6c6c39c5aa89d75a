//! `--resume DIR`: the spec outcomes an earlier bench already has.
//!
//! A bench of 40 viable mutants takes hours; one stopped by its budget or
//! a signal, or extended to more mutants, need not run the spec again on
//! the mutants it already judged. Only outcomes of the same spec are taken:
//! every run an earlier bench kept wrote its `spec.yaml`, and each must
//! equal this bench's spec but for the fields the bench sets per run (the
//! seed, the store, the node binary).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{MutantResult, Outcome};
use crate::plan::{SpecFile, TestPlan};

/// Bound on the spec files read to compare specs.
const SPECS_COMPARED_MAX: usize = 10_000;

/// Spec outcomes (caught or survived) of an earlier bench, by mutant name.
#[derive(Debug, Default)]
pub struct Resumed {
    outcomes: HashMap<String, Outcome>,
}

impl Resumed {
    /// Reads `dir/results.jsonl` and checks its runs used `spec`.
    pub fn load(dir: &Path, spec: &SpecFile) -> anyhow::Result<Resumed> {
        let path = dir.join("results.jsonl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("--resume: reading {}", path.display()))?;
        let mut outcomes = HashMap::new();
        for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let result: MutantResult = serde_json::from_str(line)
                .with_context(|| format!("--resume: {} line {}: not a bench result", path.display(), number + 1))?;
            if matches!(result.outcome, Outcome::Caught { .. } | Outcome::Survived { .. }) {
                outcomes.insert(result.mutant.name, result.outcome);
            }
        }
        if !outcomes.is_empty() {
            check_specs(dir, spec)?;
        }
        Ok(Resumed { outcomes })
    }

    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// The earlier outcome, if it answers a bench of `runs` runs: a catch
    /// within them, or survival of exactly as many.
    pub fn get(&self, name: &str, runs: u32) -> Option<Outcome> {
        match self.outcomes.get(name)? {
            outcome @ Outcome::Caught { run, .. } if *run <= runs => Some(outcome.clone()),
            outcome @ Outcome::Survived { runs: tried, .. } if *tried == runs => Some(outcome.clone()),
            _ => None,
        }
    }
}

/// Every `mutant-*/runs/<name>/<time>/spec.yaml` under `dir` equals `spec`
/// but for seed, store and node binary.
fn check_specs(dir: &Path, spec: &SpecFile) -> anyhow::Result<()> {
    let wanted = comparable(spec.clone())?;
    let specs = run_specs(dir)?;
    if specs.is_empty() {
        bail!("--resume {}: no run kept its spec.yaml, so its outcomes cannot be tied to a spec", dir.display());
    }
    for path in specs {
        let earlier = SpecFile::read(&path).map_err(|e| anyhow::anyhow!("--resume: {e}"))?;
        if comparable(earlier)? != wanted {
            bail!("--resume {}: {} is not this bench's spec", dir.display(), path.display());
        }
    }
    Ok(())
}

/// The spec as a run resolves and keeps it (every system field spelled
/// out), less what the bench sets per run.
fn comparable(spec: SpecFile) -> anyhow::Result<SpecFile> {
    let plan = TestPlan::from_spec(&spec, 0).map_err(|e| anyhow::anyhow!("--resume: {e}"))?;
    let mut spec = plan.resolved;
    spec.seed = None;
    spec.store = PathBuf::new();
    spec.cluster.options.remove("node_binary");
    Ok(spec)
}

fn run_specs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for mutant in read_dirs(dir)?.into_iter().filter(|p| file_name_starts(p, "mutant-")) {
        let runs = mutant.join("runs");
        if !runs.is_dir() {
            continue;
        }
        for test in read_dirs(&runs)? {
            for run in read_dirs(&test)?.into_iter().filter(|p| !file_name_starts(p, "latest")) {
                let spec = run.join("spec.yaml");
                if spec.is_file() && found.len() < SPECS_COMPARED_MAX {
                    found.push(spec);
                }
            }
        }
    }
    Ok(found)
}

fn read_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("--resume: reading {}", dir.display()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("--resume: reading {}", dir.display()))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    Ok(dirs)
}

fn file_name_starts(path: &Path, prefix: &str) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_line(name: &str, outcome: &str) -> String {
        format!(
            r#"{{"mutant":{{"name":"{name}","file":"f.rs","replacement":"x","span":{{"start":{{"line":1,"column":1}},"end":{{"line":1,"column":2}}}}}},{outcome}}}"#
        )
    }

    fn bench_dir(name: &str, spec: &SpecFile) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faultline-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let run = dir.join("mutant-3/runs/mutant/20261204T000000");
        std::fs::create_dir_all(&run).unwrap();
        let mut kept = spec.clone();
        kept.seed = Some(2);
        kept.cluster.options.insert("node_binary".into(), "/x/faultline-node".into());
        // As a run keeps it: resolved, every system field spelled out.
        std::fs::write(run.join("spec.yaml"), TestPlan::from_spec(&kept, 0).unwrap().resolved.to_yaml()).unwrap();
        let lines = [
            outcome_line("a", r#""outcome":"caught","run":2,"seed":2,"checkers":["durability"],"elapsed_ms":5"#),
            outcome_line("b", r#""outcome":"survived","runs":3,"unknown":0"#),
            outcome_line("c", r#""outcome":"unviable""#),
        ];
        std::fs::write(dir.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
        dir
    }

    #[test]
    fn outcomes_of_the_same_spec_answer_as_many_runs_or_more() {
        let spec = SpecFile::default();
        let dir = bench_dir("same", &spec);
        let resumed = Resumed::load(&dir, &spec).unwrap();
        assert_eq!(resumed.len(), 2, "only spec outcomes are taken");
        assert!(matches!(resumed.get("a", 3), Some(Outcome::Caught { run: 2, .. })));
        assert_eq!(resumed.get("a", 1), None, "caught at run 2 says nothing of a 1-run bench");
        assert!(matches!(resumed.get("b", 3), Some(Outcome::Survived { runs: 3, .. })));
        assert_eq!(resumed.get("b", 5), None, "3 survived runs do not answer 5");
        assert_eq!(resumed.get("c", 3), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn outcomes_of_another_spec_are_refused() {
        let spec = SpecFile::default();
        let dir = bench_dir("other", &spec);
        let mut other = spec.clone();
        other.schedule.time_limit = "10s".into();
        let error = Resumed::load(&dir, &other).unwrap_err().to_string();
        assert!(error.contains("is not this bench's spec"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
