//! The report as a user sees it: `faultline report` on results folders with
//! planted failures, then headless Chromium renders the page. Asserts the
//! verdict, the counterexample, the timeline and both charts are on the
//! page after its script ran, and that the page logged no error; keeps a
//! screenshot beside the report (target/tmp/report-tests/<case>/report.png).
mod report_support;

use report_support::*;

/// Renders `<dir>/report.html`; returns the DOM after scripts ran.
fn render_in_browser(chromium: &std::path::Path, dir: &std::path::Path) -> String {
    let page = dir.join("report.html");
    let dom = browser(chromium, &dir.join("profile-dom"), &page, &["--dump-dom".to_string()]);
    for line in dom.stderr.lines() {
        assert!(!line.contains("Uncaught"), "the page logged an error: {line}");
    }
    let shot = dir.join("report.png");
    let screenshot = browser(chromium, &dir.join("profile-shot"), &page, &[format!("--screenshot={}", shot.display())]);
    assert!(!screenshot.stderr.contains("Uncaught"), "the page logged an error:\n{}", screenshot.stderr);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot {} is missing or blank ({size} bytes)", shot.display());
    eprintln!("screenshot: {}", shot.display());
    let dom = dom.stdout;
    assert!(dom.contains("data-rendered=\"yes\""), "the report script did not finish");
    assert!(!dom.contains("data-errors="), "the page caught script errors");
    dom
}

fn charts_drawn(dom: &str) {
    assert!(dom_number(dom, "timeline", "data-drawn").unwrap_or(0) > 0, "timeline drew no operation");
    assert!(dom_number(dom, "latency", "data-drawn").unwrap_or(0) > 0, "latency chart drew no point");
    assert!(dom_number(dom, "throughput", "data-drawn").unwrap_or(0) > 0, "throughput chart drew no bar");
}

#[test]
fn invalid_register_report_shows_the_counterexample_in_a_browser() {
    let dir = kept_dir("invalid-register");
    invalid_register_run(&dir);
    let junit = dir.join("junit.xml");
    let status = faultline().arg("report").arg(&dir).arg("--junit").arg(&junit).status().unwrap();
    assert_eq!(status.code(), Some(1), "an invalid stored run reports exit 1");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure ") && xml.contains("type=\"invalid\""), "{xml}");
    assert!(xml.contains("could not be ordered"), "the failure carries the counterexample: {xml}");
    let Some(chromium) = chromium_or_skip("invalid_register_report") else { return };
    let dom = render_in_browser(&chromium, &dir);
    assert!(dom.contains("class=\"verdict invalid\">INVALID<"), "verdict badge missing");
    assert!(dom.contains("<code id=\"seed\">42</code>"), "seed missing");
    assert!(dom.contains("faultline test --spec"), "replay command missing");
    assert!(dom.contains("What went wrong"), "counterexample section missing");
    assert!(dom.contains("last consistent state"), "counterexample words missing");
    assert!(dom.contains("p2 read"), "the stuck read is not named");
    assert!(dom.contains("node-0.log"), "node log link missing");
    charts_drawn(&dom);
    let marked = dom_number(&dom, "timeline", "data-marked").unwrap_or(0);
    assert!(marked >= 2, "the counterexample's operations are not highlighted ({marked})");
}

#[test]
fn lost_write_report_names_the_write_and_the_fault() {
    let dir = kept_dir("lost-write");
    lost_write_run(&dir);
    let status = faultline().arg("report").arg(&dir).arg("--quiet").status().unwrap();
    assert_eq!(status.code(), Some(1));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // Add of 2 invoked at 3 ms, acknowledged at 4 ms (times from the first
    // event), while kill-leader was in force.
    assert!(html.contains("<td>2</td><td>0.002 s</td><td>0.003 s</td><td>kill-leader</td>"), "lost write row missing");
    let Some(chromium) = chromium_or_skip("lost_write_report") else { return };
    let dom = render_in_browser(&chromium, &dir);
    assert!(dom.contains("id=\"lost\""));
    charts_drawn(&dom);
}

#[test]
fn a_folder_without_results_is_a_harness_error() {
    let dir = kept_dir("not-a-run");
    let output = faultline().arg("report").arg(&dir).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a results folder"), "{stderr}");
}
