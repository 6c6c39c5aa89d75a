//! Prints the time to check each file of the shared Porcupine corpus.
//! `cargo run --release -p faultline-checkers --example corpus_times`
use std::path::PathBuf;
use std::time::Instant;

use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig};

fn main() {
    let shared = std::env::var_os("FAULTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("data/porcupine");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    for line in table.lines().skip(1) {
        let file = line.split('\t').next().unwrap_or_default();
        let started = Instant::now();
        let (_, history) = read_path(&dir.join(file), 2).expect("reads");
        let result = check_op_history(&history, &CheckConfig::default()).expect("checks");
        println!("{file}\t{:?}\t{:.3} ms", result.verdict, started.elapsed().as_secs_f64() * 1e3);
        if std::env::args().any(|a| a == "--keys") {
            for key in &result.keys {
                println!("  key {:?}\t{:?}\tops {}\tconfigurations {}", key.key, key.verdict, key.op_count, key.configurations);
            }
        }
    }
}
