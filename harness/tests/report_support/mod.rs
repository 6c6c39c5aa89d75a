//! Shared by the report tests: results folders with planted failures, and
//! a bounded headless Chromium.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::results::{Counts, Results, RunDir};
use faultline::verdict::{compose, linearizable, Check, CheckDetails, Checker, Durability};
use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig, Event, Verdict};

pub fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

/// A fresh folder under the target dir that outlives the test, so its
/// report and screenshot can be looked at afterwards.
pub fn kept_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Writes `results.json` (the typed results `faultline test` saves) and
/// the other files a run leaves.
pub fn write_results(dir: &Path, name: &str, seed: u64, checks: Vec<Check>) {
    let checks = compose(checks);
    let results = Results {
        name: name.into(),
        seed,
        system: "faultline-node".into(),
        verdict: checks.verdict,
        exit_code: Results::exit_code_of(checks.verdict),
        error: None,
        reasons: checks.checkers.iter().filter_map(Check::reason_text).collect(),
        counts: Counts { invoke: 3, ok: 3, fail: 0, info: 0, nemesis: 2 },
        workload: "cas-register".into(),
        nemesis: vec!["kill".into()],
        nodes: 3,
        time_limit_ms: 1000,
        elapsed_ms: 1200,
        start_unix_ns: None,
        hosts: Default::default(),
        run_dir: dir.to_path_buf(),
        checks,
        proxy: Default::default(),
    };
    results.save(&RunDir { path: dir.to_path_buf() }).unwrap();
    std::fs::write(dir.join("seed"), format!("{seed}\n")).unwrap();
    std::fs::write(dir.join("spec.yaml"), format!("name: {name}\nseed: {seed}\n")).unwrap();
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::write(dir.join("nodes/node-0.log"), "node 0 started\n").unwrap();
}

/// A valid check with no details worth showing.
pub fn valid(name: &str) -> Check {
    Check { name: name.into(), verdict: Verdict::Valid, reason: None, details: CheckDetails::Notes { lines: Vec::new() } }
}

/// A run folder whose cas-register history is not linearizable: the
/// checkers' planted example plus a kill during it.
pub fn invalid_register_run(dir: &Path) {
    let example = workspace_root().join("checkers/examples/cas-register-invalid.jsonl");
    let mut text = std::fs::read_to_string(example).unwrap();
    text.push_str("{\"process\":\"nemesis\",\"type\":\"invoke\",\"f\":\"kill-leader\",\"value\":null,\"time_ns\":2500}\n");
    text.push_str("{\"process\":\"nemesis\",\"type\":\"ok\",\"f\":\"heal\",\"value\":null,\"time_ns\":5500}\n");
    std::fs::write(dir.join("history.jsonl"), text).unwrap();
    let (_, history) = read_path(&dir.join("history.jsonl"), 1).unwrap();
    let result = check_op_history(&history, &CheckConfig::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Invalid, "the planted history must be invalid");
    let check = linearizable::to_check("linearizable-cas-register".into(), Ok(result));
    write_results(dir, "planted-register", 42, vec![check, valid("liveness")]);
}

/// A run folder of the set workload where an acknowledged add is lost
/// while a node is killed.
pub fn lost_write_run(dir: &Path) {
    let lines = [
        r#"{"process":0,"type":"invoke","f":"add","value":1,"time_ns":1000000}"#,
        r#"{"process":0,"type":"ok","f":"add","value":1,"time_ns":2000000}"#,
        r#"{"process":"nemesis","type":"invoke","f":"kill-leader","value":null,"time_ns":2500000}"#,
        r#"{"process":1,"type":"invoke","f":"add","value":2,"time_ns":3000000}"#,
        r#"{"process":1,"type":"ok","f":"add","value":2,"time_ns":4000000}"#,
        r#"{"process":"nemesis","type":"ok","f":"heal","value":null,"time_ns":6000000}"#,
        r#"{"process":2,"type":"invoke","f":"read","value":null,"time_ns":7000000}"#,
        r#"{"process":2,"type":"ok","f":"read","value":[1],"time_ns":8000000}"#,
    ];
    std::fs::write(dir.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let events: Vec<Event> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let history = faultline_checkers::read::history_from_events(&events).unwrap();
    let check = Durability.check(&history);
    assert_eq!(check.verdict, Verdict::Invalid, "the planted loss must be found");
    write_results(dir, "planted-loss", 7, vec![check]);
}

/// Chromium's path: `FAULTLINE_CHROMIUM`, else the usual names on PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAULTLINE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Chromium, or `None` after a loud message when it is absent outside CI.
/// Under CI (env `CI` set) a missing browser fails the test.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{test}: CI is set but chromium is not installed (apt-get install chromium)");
        eprintln!("\n*** {test}: SKIPPED: chromium not found (set FAULTLINE_CHROMIUM or install chromium) ***\n");
    }
    found
}

pub struct BrowserRun {
    pub stdout: String,
    pub stderr: String,
}

const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs headless Chromium on a page with `extra` arguments; killed and
/// reaped if it outlives [`BROWSER_TIMEOUT`].
pub fn browser(chromium: &Path, profile: &Path, page: &Path, extra: &[String]) -> BrowserRun {
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    BrowserRun {
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// The number in `attribute="N"` on the element with `id`, from a DOM dump.
pub fn dom_number(dom: &str, id: &str, attribute: &str) -> Option<u64> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attribute}=\"");
    let value_start = tag.find(&key)? + key.len();
    let value_end = value_start + tag[value_start..].find('"')?;
    tag[value_start..value_end].parse().ok()
}

/// Whether the first `<tag ...>` of a JUnit document carries these counts
/// (attribute order is the writer's business).
pub fn junit_counts(xml: &str, tag: &str, tests: u64, failures: u64, errors: u64) -> bool {
    let Some(start) = xml.find(&format!("<{tag} ")) else { return false };
    let element = &xml[start..start + xml[start..].find('>').unwrap_or(0)];
    [("tests", tests), ("failures", failures), ("errors", errors)]
        .iter()
        .all(|(name, count)| element.contains(&format!(" {name}=\"{count}\"")))
}
