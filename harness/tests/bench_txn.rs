//! The small slice of `faultline bench txn` that CI runs: clean histories
//! check valid, planted read skews are found, and the figures print.
use std::process::Command;

#[test]
fn the_txn_bench_finds_what_it_planted_and_prints_its_figures() {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["bench", "txn", "--txns", "5000", "--processes", "5", "--planted", "2", "--seed", "7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|line| line.contains("txns,")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("0 planted: valid (0 anomalies)"), "{stdout}");
    assert!(lines[1].contains("2 planted: invalid") && lines[1].contains("2 G-single"), "{stdout}");
    assert!(lines.iter().all(|line| line.contains("txns/s") && line.contains("peak")), "{stdout}");
}
