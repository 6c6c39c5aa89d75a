//! The shrink's `report.html`: the page of one run of the minimal test
//! that failed the same way, opened by a "minimal failing schedule"
//! section (before and after, the faults that survived); its timeline
//! shades those faults like any run's.
use std::path::{Path, PathBuf};

use super::record::ShrinkRecord;
use crate::nemesis::recorded::{RecordedEvent, RecordedSchedule, SCHEDULE_FILE};
use crate::report::input::MinimalSchedule;
use crate::report::{shell_word, ReportInput, REPORT_FILE};
use crate::run::RunOutcome;

/// Writes `record.dir/report.html` from the run in `run_dir` (a
/// confirmation run under `record.dir`, or the original when nothing
/// smaller was confirmed). `events` is the minimal schedule; the faults
/// listed are the run's own record of them (with the targets a node pass
/// left to the nemesis as it drew them), when it has one.
pub fn write(record: &ShrinkRecord, events: &[RecordedEvent], run_dir: &Path) -> Result<PathBuf, String> {
    let outcome = RunOutcome::load(run_dir).map_err(|e| e.to_string())?;
    let (nodes, time_limit_ms) = (outcome.results.nodes, outcome.results.time_limit_ms);
    let events = match RecordedSchedule::read(&run_dir.join(SCHEDULE_FILE), nodes, time_limit_ms) {
        Ok(hit) if hit.events.len() == events.len() => hit.events,
        _ => events.to_vec(),
    };
    let mut input = ReportInput::from_results(&outcome.results, run_dir);
    let to_run = relative(&record.dir, run_dir);
    for log in &mut input.logs {
        log.href = format!("{to_run}/{}", log.href);
    }
    input.title = format!("faultline shrink {}", outcome.results.name);
    input.replay = Some(format!(
        "faultline test --spec {} --seed {} --schedule {}",
        shell_word(&record.dir.join("spec.yaml").display().to_string()),
        outcome.results.seed,
        shell_word(&record.dir.join(SCHEDULE_FILE).display().to_string())
    ));
    let rows = record.rows().into_iter().map(|row| (row.what.to_string(), row.before, row.after)).collect();
    let chosen = match record.reproduction_runs {
        0 => "Nothing smaller than the original was confirmed; below is the original run".to_string(),
        runs => format!("Below is one of the {runs} confirmation runs of the minimal test, {} of which failed the same way", record.reproduced),
    };
    let note = format!(
        "Shrunk from {} ({}) in {:.1} min, {} candidates. {chosen}: {}.",
        record.original.dir.display(),
        record.original.findings.join(", "),
        record.wall_ms as f64 / 60e3,
        record.candidates_tried,
        run_dir.display()
    );
    input.minimal = Some(MinimalSchedule { rows, faults: events.iter().map(RecordedEvent::describe).collect(), note });
    let out = record.dir.join(REPORT_FILE);
    crate::report::write_report(&input, &outcome.timeline, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `to` as seen from `from`: below it, or `..` steps up to a common
/// ancestor (the original run is the shrink folder's parent).
fn relative(from: &Path, to: &Path) -> String {
    let mut up = Vec::new();
    let mut base = from;
    loop {
        if let Ok(rest) = to.strip_prefix(base) {
            let mut parts: Vec<String> = up.clone();
            parts.extend(rest.components().map(|c| c.as_os_str().to_string_lossy().to_string()));
            return if parts.is_empty() { ".".to_string() } else { parts.join("/") };
        }
        match base.parent() {
            Some(parent) => {
                up.push("..".to_string());
                base = parent;
            }
            None => return to.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_lead_from_the_shrink_folder_to_the_run() {
        let shrink = Path::new("store/t/1/shrink");
        assert_eq!(relative(shrink, Path::new("store/t/1/shrink/confirm/2/runs/t/9")), "confirm/2/runs/t/9");
        assert_eq!(relative(shrink, Path::new("store/t/1")), "..");
        assert_eq!(relative(shrink, shrink), ".");
        assert_eq!(relative(shrink, Path::new("store/u/4")), "../../../u/4");
    }
}
