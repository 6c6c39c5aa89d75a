//! The CI slice of the detection matrix: planted bugs and a weaker mode that
//! short faulted runs must catch (an `invalid` verdict), and the correct
//! node that the same runs must not flag. The full matrix is
//! `faultline matrix` (harness/docs/matrix.md).
use faultline::matrix::{self, targets, ProbeOptions};

fn options(store: &std::path::Path, runs: u32) -> ProbeOptions {
    ProbeOptions {
        runs,
        time_limit: "8s".to_string(),
        seed: 1,
        store: store.to_path_buf(),
        node_binary: None,
        baseline: false,
        default_spec: false,
    }
}

fn store_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-matrix-ci-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_bugs_and_weaker_modes_are_detected_and_correct_node_is_not() {
    // no-fsync needs the power-loss nemesis (FUSE, root).
    // forget-vote needs the scripted revote election race.
    // corrupt-replica: a follower's state drifts where no client reads it;
    // the convergence check must be among those that fire.
    let mut names: Vec<String> =
        ["ack-before-commit", "forget-vote", "async", "corrupt-replica"].into_iter().map(String::from).collect();
    match faultline_lazyfs::available() {
        Ok(()) => names.push("no-fsync".to_string()),
        Err(why) if std::env::var("FAULTLINE_REQUIRE_FUSE").as_deref() == Ok("1") => {
            panic!("FAULTLINE_REQUIRE_FUSE=1 but {why}")
        }
        Err(why) => eprintln!("SKIP: no-fsync: {why}"),
    }
    let selected = targets::select(&names).unwrap();
    let store = store_dir("bugs");
    let mut probes = Vec::new();
    for target in &selected {
        probes.push(matrix::probe(target, &options(&store, 3)).await.unwrap());
    }
    print!("{}", matrix::table(&probes));
    for probe in &probes {
        assert!(probe.detected_in_run.is_some(), "{} was not detected in {} runs", probe.target.name, probe.runs);
        assert!(!probe.fired.is_empty(), "{} detected but no checker named", probe.target.name);
    }
    let corrupt = probes.iter().find(|probe| probe.target.name == "corrupt-replica").unwrap();
    assert!(corrupt.fired.iter().any(|checker| checker == "convergence"), "{:?}", corrupt.fired);
    // One test, so the clusters run one at a time on CI's two cores: the
    // correct node under the same kind of run must not be flagged.
    let (alarms, _unknown, seeds) = matrix::control(&options(&store, 1), 1).await.unwrap();
    assert_eq!(alarms, 0, "false alarm on the correct node, seeds {seeds:?}");
    let _ = std::fs::remove_dir_all(&store);
}
