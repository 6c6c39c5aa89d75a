//! `faultline bench check`: figures for the linearizability checker.
//!
//! 1. The shared Porcupine corpora: median time (read + check) per file over
//!    `--runs` runs, each kv file, and the totals of the etcd and kv files.
//!    A verdict that differs from `expected.tsv` makes the command exit 3
//!    (harness error), naming the file: figures for a wrong checker are
//!    not figures.
//! 2. A generated kv history (default 1,000,000 operations, 1,000 keys,
//!    10 clients), linearizable by construction, and the same with one
//!    planted stale read: parse time, check time, total and peak memory.
//!
//! Peak memory is `VmHWM` from `/proc/self/status`, reset before each
//! measurement by writing `5` to `/proc/self/clear_refs` (Linux).
use std::collections::{BinaryHeap, HashMap};
use std::cmp::Reverse;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_checkers::read::read_path;
use faultline_checkers::{check_op_history, CheckConfig, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
}

/// Largest generated history accepted, to keep the bench bounded.
const GENERATED_OPS_MAX: u64 = 50_000_000;
/// Most runs per corpus file.
const RUNS_MAX: u32 = 100;

pub fn run(args: CheckBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!((1..=RUNS_MAX).contains(&args.runs), "--runs must be 1..={RUNS_MAX}");
    anyhow::ensure!(args.ops <= GENERATED_OPS_MAX, "--ops must be at most {GENERATED_OPS_MAX}");
    anyhow::ensure!(args.keys >= 1 && args.clients >= 1, "--keys and --clients must be at least 1");
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
        "Generated kv history: {} ops, {} keys, {} clients, seed {}",
        args.ops, args.keys, args.clients, args.seed
    );
    for (name, stale) in [("linearizable", false), ("one stale read", true)] {
        let path = dir.join(format!("faultline-bench-check-{}-{}.jsonl", std::process::id(), stale as u8));
        let generated = generate_kv(&path, args, stale);
        let measured = generated.and_then(|bytes| measure(&path, bytes));
        let _ = std::fs::remove_file(&path);
        let m = measured?;
        println!(
            "  {name:<15} {:>7.1} MiB file: parse {:.0} ms, check {:.0} ms, total {:.0} ms (CPU {}), peak memory {} -> {}",
            m.file_mib,
            ms(m.parse),
            ms(m.check),
            ms(m.parse + m.check),
            m.cpu,
            m.peak_mib.map_or("n/a".to_string(), |p| format!("{p:.0} MiB")),
            m.verdict.name()
        );
    }
    Ok(())
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

/// Per key: the current value, the one before it, and when the current
/// value's put returned.
#[derive(Default)]
struct KeyState {
    current: Option<u64>,
    previous: Option<u64>,
    current_acked_ns: u64,
}

/// Time between one client's invocations; each operation takes effect one
/// unit after its call and returns within the slot, so a client never has
/// two operations pending while clients overlap each other.
const SLOT_NS: u64 = 100;

/// Writes a linearizable-by-construction kv history (or, with `stale`, one
/// with a single stale read planted halfway); returns the bytes written.
fn generate_kv(path: &Path, args: &CheckBenchArgs, stale: bool) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut keys: HashMap<u64, KeyState> = HashMap::new();
    // Completions waiting to be written, ordered by time: bounded by the
    // number of clients, as each client has at most one pending.
    let mut returns: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut planted = !stale;
    let mut bytes = 0u64;
    let step_ns = SLOT_NS / args.clients.max(1);
    for i in 0..args.ops {
        let call_ns = i * step_ns.max(1);
        while returns.peek().is_some_and(|Reverse((t, _))| *t < call_ns) {
            let Reverse((_, line)) = returns.pop().expect("peeked");
            bytes += line.len() as u64;
            out.write_all(line.as_bytes())?;
        }
        let process = i % args.clients;
        let key = rng.random_range(0..args.keys);
        let return_ns = call_ns + 1 + rng.random_range(1..SLOT_NS - 2);
        let state = keys.entry(key).or_default();
        let (f, invoke_value, ok_value) = if rng.random_bool(0.5) {
            state.previous = state.current;
            state.current = Some(i);
            state.current_acked_ns = return_ns;
            ("put", format!("\"v{i}\""), format!("\"v{i}\""))
        } else {
            let can_plant = !planted && i >= args.ops / 2 && state.previous.is_some() && state.current_acked_ns < call_ns;
            let seen = if can_plant {
                planted = true;
                state.previous
            } else {
                state.current
            };
            ("get", "null".to_string(), seen.map_or("\"\"".to_string(), |v| format!("\"v{v}\"")))
        };
        let invoke = format!(
            "{{\"process\":{process},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"k{key}\",\"value\":{invoke_value},\"time_ns\":{call_ns}}}\n"
        );
        bytes += invoke.len() as u64;
        out.write_all(invoke.as_bytes())?;
        let ok = format!(
            "{{\"process\":{process},\"type\":\"ok\",\"f\":\"{f}\",\"key\":\"k{key}\",\"value\":{ok_value},\"time_ns\":{return_ns}}}\n"
        );
        returns.push(Reverse((return_ns, ok)));
    }
    while let Some(Reverse((_, line))) = returns.pop() {
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    anyhow::ensure!(planted, "could not plant a stale read (history too small)");
    Ok(bytes)
}
