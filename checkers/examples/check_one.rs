//! Checks one history file N times and prints the time per run (profiling aid).
//! `cargo run --release -p faultline-checkers --example check_one -- FILE [N]`
use std::path::PathBuf;
use std::time::Instant;

use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next().map(PathBuf::from) else {
        eprintln!("usage: check_one FILE [RUNS]");
        std::process::exit(2);
    };
    let runs: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    for _ in 0..runs {
        let started = Instant::now();
        let (_, history) = match read_path(&file, 2) {
            Ok(read) => read,
            Err(err) => {
                eprintln!("{}: {err}", file.display());
                std::process::exit(3);
            }
        };
        let parsed = started.elapsed();
        let result = match check_op_history(&history, &CheckConfig::default()) {
            Ok(result) => result,
            Err(err) => {
                eprintln!("{}: {err}", file.display());
                std::process::exit(3);
            }
        };
        println!(
            "{:?} parse {:.1} ms total {:.1} ms",
            result.verdict,
            parsed.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}
