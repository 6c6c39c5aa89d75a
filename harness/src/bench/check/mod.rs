//! `faultline bench check`: figures for the linearizability checker.
//!
//! 1. The shared Porcupine corpora: median time (read + check) per file over
//!    `--runs` runs, each kv file, and the totals of the etcd and kv files.
//!    A verdict that differs from `expected.tsv` makes the command exit 3
//!    (harness error), naming the file: figures for a wrong checker are
//!    not figures.
//! 2. A generated kv history (default 1,000,000 operations, 1,000 keys,
//!    10 clients, values that appends make grow; see [`generate`]) in EDN
//!    and in JSONL, linearizable by construction and with one planted stale
//!    read. In this process: parse and check time, MB/s, operations per
//!    second and peak memory. As a whole process, as users run it:
//!    `faultline check --model kv FILE`'s wall time and peak memory, beside
//!    the I/O limit: `cat FILE > /dev/null` and `read(2)` into memory.
//!
//! In-process peak memory is `VmHWM` from `/proc/self/status`, reset before
//! each measurement by writing `5` to `/proc/self/clear_refs` (Linux).
mod generate;
mod process;

use std::cmp::Reverse;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig, Verdict};

use generate::{generate_kv, HistoryFormat, KvSpec};

#[derive(clap::Args)]
pub struct CheckBenchArgs {
    /// Runs per corpus file; the median counts.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Operations in the generated kv history (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: u64,
    /// Keys in the generated history.
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// Clients (processes) in the generated history.
    #[arg(long, default_value_t = 10)]
    pub clients: u64,
    /// Seed of the generated history.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder for the generated history files (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Leave the generated files in place (their paths are printed), to
    /// run another checker on the same bytes.
    #[arg(long)]
    pub keep: bool,
    /// Whole-process runs of `faultline check` per generated file; the
    /// median wall time and the largest peak count (0 skips them).
    #[arg(long, default_value_t = 3)]
    pub process_runs: u32,
}

/// Largest generated history accepted, to keep the bench bounded.
const GENERATED_OPS_MAX: u64 = 50_000_000;
/// Most keys and clients in it (the generator holds a state per key).
const KEYS_MAX: u64 = 10_000_000;
const CLIENTS_MAX: u64 = 10_000;
/// Most runs per corpus file.
const RUNS_MAX: u32 = 100;

pub fn run(args: CheckBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=RUNS_MAX).contains(&args.runs), "--runs must be 1..={RUNS_MAX}");
    anyhow::ensure!(args.ops <= GENERATED_OPS_MAX, "--ops must be at most {GENERATED_OPS_MAX}");
    anyhow::ensure!((1..=KEYS_MAX).contains(&args.keys), "--keys must be 1..={KEYS_MAX}");
    anyhow::ensure!((1..=CLIENTS_MAX).contains(&args.clients), "--clients must be 1..={CLIENTS_MAX}");
    anyhow::ensure!(args.process_runs <= RUNS_MAX, "--process-runs must be at most {RUNS_MAX}");
    let mismatches = bench_corpus(args.runs)?;
    if args.ops > 0 {
        bench_generated(&args)?;
    }
    if mismatches.is_empty() {
        return Ok(ExitCode::from(crate::EXIT_VALID));
    }
    // Repeated last, after the figures, so CI logs end with the reason.
    eprintln!("faultline: error: {} corpus verdicts differ from expected.tsv:", mismatches.len());
    for mismatch in &mismatches {
        eprintln!("  {mismatch}");
    }
    Ok(ExitCode::from(crate::EXIT_HARNESS_ERROR))
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("FAULTLINE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Reads and checks one file; the verdict and the time taken.
fn time_file(path: &Path) -> anyhow::Result<(Verdict, Duration)> {
    let started = Instant::now();
    let (_, history) = read_path(path, CheckConfig::default().threads).with_context(|| path.display().to_string())?;
    let result = check_op_history(&history, &CheckConfig::default()).with_context(|| path.display().to_string())?;
    Ok((result.verdict, started.elapsed()))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times every corpus file; returns the files whose verdict differs from
/// `expected.tsv`, one line each.
fn bench_corpus(runs: u32) -> anyhow::Result<Vec<String>> {
    let dir = shared_dir().join("data/porcupine");
    let table = std::fs::read_to_string(dir.join("expected.tsv")).with_context(|| format!("{}", dir.display()))?;
    println!("Porcupine corpora ({}), read + check, median of {runs} runs per file:", dir.display());
    let mut etcd: Vec<(String, Duration)> = Vec::new();
    let mut kv: Vec<(String, Duration)> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    let cpu_start = cpu_time();
    for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(fields.len() == 3, "bad expected.tsv line {line:?}");
        let expected = if fields[2] == "true" { Verdict::Valid } else { Verdict::Invalid };
        let mut times = Vec::new();
        // Every run's verdict counts: one wrong answer in five is a bug.
        let mut wrong: Option<Verdict> = None;
        let mut verdict = Verdict::Unknown;
        for _ in 0..runs {
            let (v, t) = time_file(&dir.join(fields[0]))?;
            verdict = v;
            if v != expected {
                wrong = Some(v);
            }
            times.push(t);
        }
        if let Some(got) = wrong {
            let mismatch = format!("{}: {} (expected {})", fields[0], got.name(), expected.name());
            println!("  MISMATCH {mismatch}");
            mismatches.push(mismatch);
        }
        let time = median(times);
        if fields[0].starts_with("jepsen/") {
            etcd.push((fields[0].to_string(), time));
        } else {
            println!("  {:<22} {:>9.2} ms  {}", fields[0], ms(time), verdict.name());
            kv.push((fields[0].to_string(), time));
        }
    }
    print_total("kv", &kv);
    print_total("etcd", &etcd);
    etcd.sort_by_key(|(_, t)| Reverse(*t));
    for (file, time) in etcd.iter().take(3) {
        println!("    slowest: {file} {:.2} ms", ms(*time));
    }
    println!("  CPU time for all {runs} runs of every file: {}", cpu_since(cpu_start));
    println!("  verdicts differing from expected.tsv: {}", mismatches.len());
    Ok(mismatches)
}

/// One group's line: file count, total of the per-file medians, and the
/// median per file.
fn print_total(group: &str, files: &[(String, Duration)]) {
    if files.is_empty() {
        return;
    }
    let total: Duration = files.iter().map(|(_, t)| *t).sum();
    let per_file = median(files.iter().map(|(_, t)| *t).collect());
    println!("  {group}: {} files, total {:.1} ms, median per file {:.2} ms", files.len(), ms(total), ms(per_file));
}

/// Peak resident memory since the last reset, in MiB (None off Linux).
pub(super) fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system, all threads) of this process so far, from
/// `/proc/self/stat` in clock ticks (assumed 100 per second, the Linux
/// default). On a shared, loaded machine this is the steadier figure.
fn cpu_time() -> Option<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SECOND))
}

fn cpu_since(start: Option<Duration>) -> String {
    match (start, cpu_time()) {
        (Some(start), Some(now)) => format!("{:.0} ms", ms(now.saturating_sub(start))),
        _ => "n/a".to_string(),
    }
}

pub(super) fn reset_peak_memory() {
    // Best effort: without it the figure is the process's peak so far.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench_generated(args: &CheckBenchArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    println!(
        "Generated kv history: {} ops, {} keys, {} clients, seed {}; gets return whole values that appends grow",
        args.ops, args.keys, args.clients, args.seed
    );
    for format in [HistoryFormat::Edn, HistoryFormat::Jsonl] {
        for (name, stale) in [("linearizable", false), ("one stale read", true)] {
            let path = dir.join(format!("faultline-bench-check-{}-{}-{}", std::process::id(), format.name(), stale as u8));
            let spec = KvSpec { ops: args.ops, keys: args.keys, clients: args.clients, seed: args.seed, format, stale };
            let measured = generate_kv(&path, &spec).and_then(|bytes| {
                let in_process = measure(&path, bytes)?;
                let whole = measure_process(&path, args.process_runs)?;
                Ok((in_process, whole))
            });
            if args.keep {
                println!("  kept {}", path.display());
            } else {
                let _ = std::fs::remove_file(&path);
            }
            let (m, whole) = measured?;
            print_generated(format, name, args.ops, &m, whole.as_ref());
        }
    }
    Ok(())
}

fn print_generated(format: HistoryFormat, name: &str, ops: u64, m: &Measured, whole: Option<&WholeProcess>) {
    let mb = m.file_mib * (1 << 20) as f64 / 1e6;
    let rate = |d: Duration| (mb / d.as_secs_f64(), ops as f64 / d.as_secs_f64() / 1e6);
    let (parse_mb_s, parse_mops) = rate(m.parse);
    let (check_mb_s, check_mops) = rate(m.check);
    println!("  {:<5} {name:<15} {:>7.1} MiB -> {}", format.name(), m.file_mib, m.verdict.name());
    println!(
        "    in process: parse {:.0} ms ({parse_mb_s:.0} MB/s, {parse_mops:.2} M ops/s), check {:.0} ms ({check_mb_s:.0} MB/s, {check_mops:.2} M ops/s), total {:.0} ms (CPU {}), peak memory {}",
        ms(m.parse),
        ms(m.check),
        ms(m.parse + m.check),
        m.cpu,
        m.peak_mib.map_or("n/a".to_string(), |p| format!("{p:.0} MiB")),
    );
    if let Some(w) = whole {
        println!(
            "    whole process `faultline check --model kv`: {:.0} ms ({:.0} MB/s), peak memory {:.0} MiB, exit {}",
            ms(w.wall),
            mb / w.wall.as_secs_f64(),
            w.peak_mib,
            w.exit_code.map_or("by signal".to_string(), |c| c.to_string()),
        );
        println!(
            "    I/O limit: `cat FILE > /dev/null` {:.0} ms ({:.0} MB/s); read(2) into memory {:.0} ms ({:.0} MB/s): parse runs at {:.0} % of the read speed",
            ms(w.cat),
            mb / w.cat.as_secs_f64(),
            ms(w.read),
            mb / w.read.as_secs_f64(),
            100.0 * w.read.as_secs_f64() / m.parse.as_secs_f64(),
        );
    }
}

struct Measured {
    file_mib: f64,
    parse: Duration,
    check: Duration,
    peak_mib: Option<f64>,
    verdict: Verdict,
    cpu: String,
}

fn measure(path: &Path, bytes: u64) -> anyhow::Result<Measured> {
    reset_peak_memory();
    let cpu_start = cpu_time();
    let started = Instant::now();
    let (_, history) = read_path(path, CheckConfig::default().threads)?;
    let parse = started.elapsed();
    let result = check_op_history(&history, &CheckConfig::default())?;
    let check = started.elapsed() - parse;
    Ok(Measured {
        file_mib: bytes as f64 / (1 << 20) as f64,
        parse,
        check,
        peak_mib: peak_memory_mib(),
        verdict: result.verdict,
        cpu: cpu_since(cpu_start),
    })
}

/// `faultline check` as a whole process, and `cat` on the same file.
struct WholeProcess {
    /// Median over the runs.
    wall: Duration,
    /// Largest over the runs.
    peak_mib: f64,
    exit_code: Option<i32>,
    cat: Duration,
    /// Reading the file into memory (see [`process::read_time`]).
    read: Duration,
}

fn measure_process(path: &Path, runs: u32) -> anyhow::Result<Option<WholeProcess>> {
    if runs == 0 {
        return Ok(None);
    }
    let exe = std::env::current_exe().context("finding the faultline binary")?;
    let cat = process::cat_time(path, runs)?;
    let read = process::read_time(path, runs)?;
    let mut walls = Vec::new();
    let mut peak_mib: f64 = 0.0;
    let mut exit_code = None;
    for _ in 0..runs {
        let figures = process::run_measured(Command::new(&exe).args(["check", "--model", "kv", "--quiet"]).arg(path))?;
        walls.push(figures.wall);
        peak_mib = peak_mib.max(figures.peak_mib);
        exit_code = figures.exit_code;
    }
    Ok(Some(WholeProcess { wall: median(walls), peak_mib, exit_code, cat, read }))
}
