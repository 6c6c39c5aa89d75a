//! One mutant as cargo-mutants lists it, its seeded order, and applying it.
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The node code mutated: replication, the log, the server's paths.
const MUTATED_FILES: [&str; 3] = ["cluster-node/src/raft/**", "cluster-node/src/wal/**", "cluster-node/src/server/**"];

/// One mutant, as cargo-mutants lists it (fields faultline uses).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mutant {
    pub name: String,
    pub file: String,
    pub replacement: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Span {
    pub start: LineColumn,
    pub end: LineColumn,
}

/// 1-based line and column (in characters), as cargo-mutants prints them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// `cargo mutants --list --json` over the mutated files.
pub fn list(workspace: &Path) -> anyhow::Result<Vec<Mutant>> {
    let mut command = Command::new("cargo");
    command.current_dir(workspace).args(["mutants", "--list", "--json", "--package", "faultline-node"]);
    for file in MUTATED_FILES {
        command.args(["--file", file]);
    }
    let output = command.stderr(Stdio::piped()).output().context("running cargo mutants")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("no such command") {
            bail!("cargo-mutants is not installed: cargo install cargo-mutants --locked");
        }
        bail!("cargo mutants --list failed: {}", stderr.lines().last().unwrap_or("no output"));
    }
    serde_json::from_slice(&output.stdout).context("reading cargo mutants' JSON listing")
}

/// Indices of the listing in the seeded order mutants are tried in. A
/// sample of N is the first N of this order, so a larger sample with the
/// same seed contains a smaller one, and `--viable N` is the shortest
/// prefix holding N mutants that pass the node's own tests.
pub fn order(listed: usize, all: bool, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..listed).collect();
    if !all {
        indices.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    indices
}

/// Whether `--only`'s texts choose this mutant (any one of them in its name).
pub fn named_by(mutant: &Mutant, texts: &[String]) -> bool {
    texts.iter().any(|text| mutant.name.contains(text.as_str()))
}

/// `source` with the mutant's span replaced.
pub fn apply(source: &str, mutant: &Mutant) -> anyhow::Result<String> {
    let start = offset(source, mutant.span.start).with_context(|| format!("{}: span start out of the file", mutant.name))?;
    let end = offset(source, mutant.span.end).with_context(|| format!("{}: span end out of the file", mutant.name))?;
    anyhow::ensure!(start <= end, "{}: span ends before it starts", mutant.name);
    Ok(format!("{}{}{}", &source[..start], mutant.replacement, &source[end..]))
}

/// Byte offset of a 1-based line and character column.
fn offset(source: &str, at: LineColumn) -> Option<usize> {
    let line_start: usize = source.split_inclusive('\n').take(at.line.checked_sub(1)?).map(str::len).sum();
    let line = source[line_start..].split('\n').next()?;
    let column = at.column.checked_sub(1)?;
    match line.char_indices().nth(column) {
        Some((byte, _)) => Some(line_start + byte),
        None if column == line.chars().count() => Some(line_start + line.len()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutant(start: (usize, usize), end: (usize, usize), replacement: &str) -> Mutant {
        Mutant {
            name: "m".into(),
            file: "f.rs".into(),
            replacement: replacement.into(),
            span: Span {
                start: LineColumn { line: start.0, column: start.1 },
                end: LineColumn { line: end.0, column: end.1 },
            },
        }
    }

    #[test]
    fn a_mutant_replaces_its_span_only() {
        let source = "fn a() -> bool {\n    x > 1\n}\n";
        assert_eq!(apply(source, &mutant((2, 7), (2, 8), ">=")).unwrap(), "fn a() -> bool {\n    x >= 1\n}\n");
        assert_eq!(apply(source, &mutant((1, 16), (3, 2), "{ true }")).unwrap(), "fn a() -> bool { true }\n");
        assert!(apply(source, &mutant((9, 1), (9, 2), "x")).is_err(), "a span out of the file is an error");
    }

    #[test]
    fn only_texts_choose_mutants_by_name() {
        let mut named = mutant((1, 1), (1, 2), "x");
        named.name = "cluster-node/src/wal/mod.rs:350:25: delete ! in create_dir_durably".into();
        assert!(named_by(&named, &["in create_dir_durably".into()]));
        assert!(named_by(&named, &["nothing".into(), "wal/mod.rs:350:25".into()]), "any text");
        assert!(!named_by(&named, &["in Wal::sync".into()]));
        assert!(!named_by(&named, &[]), "no text chooses nothing; the bench filters only when --only is given");
    }

    #[test]
    fn the_order_is_seeded_and_a_larger_sample_holds_a_smaller_one() {
        assert_eq!(order(100, false, 7), order(100, false, 7));
        assert_ne!(order(100, false, 7), order(100, false, 8));
        let mut sorted = order(100, false, 7);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "a permutation of the listing");
        assert_eq!(order(5, true, 7), vec![0, 1, 2, 3, 4], "--all keeps the listing order");
    }
}
