//! What the node's own tests said about each mutant, kept between
//! benches in `<store>/bench-mutants/node-tests.jsonl`.
//!
//! The node's tests decide the same way whatever spec the harness runs,
//! so a bench that compares two specs (a baseline and a new default), or
//! is stopped by its budget and started again, filters each mutant once.
//! An entry holds for one state of the node's sources: its key starts
//! with a hash of every file under `cluster-node/` and `Cargo.lock`, so
//! any change to the node makes every entry stale.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::mutant::Mutant;

/// What the node's tests did with one mutant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "filter", rename_all = "kebab-case")]
pub enum Filter {
    Unviable,
    /// A test failed (the first one named) or the tests hung.
    Caught { by: String },
    Passed,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    sources: String,
    mutant: Mutant,
    #[serde(flatten)]
    filter: Filter,
}

pub struct NodeTestsCache {
    path: PathBuf,
    sources: String,
    entries: HashMap<String, Filter>,
}

impl NodeTestsCache {
    /// The entries of `path` that hold for the node's sources in `workspace`.
    pub fn open(path: &Path, workspace: &Path) -> anyhow::Result<NodeTestsCache> {
        let sources = format!("{:016x}", sources_hash(workspace)?);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        // A line cut short by a killed bench is skipped, not an error, and
        // ended, so the next entry starts a line of its own.
        if !text.is_empty() && !text.ends_with('\n') {
            std::fs::OpenOptions::new().append(true).open(path)?.write_all(b"\n")?;
        }
        let entries = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Entry>(line).ok())
            .filter(|entry| entry.sources == sources)
            .map(|entry| (key(&entry.mutant), entry.filter))
            .collect();
        Ok(NodeTestsCache { path: path.to_path_buf(), sources, entries })
    }

    pub fn get(&self, mutant: &Mutant) -> Option<&Filter> {
        self.entries.get(&key(mutant))
    }

    /// Reads the file again: another bench on the same store (with
    /// `--scratch` of its own) may have filtered mutants since.
    pub fn reload(&mut self, workspace: &Path) -> anyhow::Result<()> {
        *self = NodeTestsCache::open(&self.path, workspace)?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records a filter, appended to the file at once (a bench stopped
    /// half-way keeps what it learned).
    pub fn record(&mut self, mutant: &Mutant, filter: Filter) -> anyhow::Result<()> {
        let entry = Entry { sources: self.sources.clone(), mutant: mutant.clone(), filter };
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(file, "{}", serde_json::to_string(&entry)?)?;
        self.entries.insert(key(mutant), entry.filter);
        Ok(())
    }
}

fn key(mutant: &Mutant) -> String {
    format!("{}|{:?}|{}", mutant.file, mutant.span, mutant.replacement)
}

/// FNV-1a over the node's sources and the lock file, in path order. A
/// cache key needs no cryptographic hash; this is six lines, not a crate.
fn sources_hash(workspace: &Path) -> anyhow::Result<u64> {
    let mut files = Vec::new();
    collect_files(&workspace.join("cluster-node"), &mut files)?;
    files.push(workspace.join("Cargo.lock"));
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let relative = file.strip_prefix(workspace).unwrap_or(&file).to_string_lossy().into_owned();
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        for byte in relative.bytes().chain([0]).chain(bytes) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(hash)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "target" {
                collect_files(&entry.path(), out)?;
            }
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::mutants::mutant::{LineColumn, Span};

    fn workspace(dir: &Path, node_source: &str) {
        std::fs::create_dir_all(dir.join("cluster-node/src")).unwrap();
        std::fs::write(dir.join("cluster-node/src/lib.rs"), node_source).unwrap();
        std::fs::write(dir.join("Cargo.lock"), "lock").unwrap();
    }

    fn mutant(replacement: &str) -> Mutant {
        let at = LineColumn { line: 1, column: 1 };
        Mutant { name: "m".into(), file: "cluster-node/src/lib.rs".into(), replacement: replacement.into(), span: Span { start: at, end: at } }
    }

    #[test]
    fn entries_survive_a_reopen_and_go_stale_when_the_node_changes() {
        let dir = std::env::temp_dir().join(format!("faultline-mutants-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        workspace(&dir, "fn a() {}");
        let path = dir.join("node-tests.jsonl");
        let mut cache = NodeTestsCache::open(&path, &dir).unwrap();
        cache.record(&mutant("x"), Filter::Caught { by: "raft::t".into() }).unwrap();
        cache.record(&mutant("y"), Filter::Passed).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"sources\": \"cut sh").unwrap();
        NodeTestsCache::open(&path, &dir).unwrap().record(&mutant("w"), Filter::Unviable).unwrap();
        let reopened = NodeTestsCache::open(&path, &dir).unwrap();
        assert_eq!(reopened.get(&mutant("w")), Some(&Filter::Unviable), "an entry after a cut line is kept");
        assert_eq!(reopened.get(&mutant("x")), Some(&Filter::Caught { by: "raft::t".into() }));
        assert_eq!(reopened.get(&mutant("y")), Some(&Filter::Passed));
        assert_eq!(reopened.get(&mutant("z")), None);
        workspace(&dir, "fn a() { b() }");
        assert_eq!(NodeTestsCache::open(&path, &dir).unwrap().len(), 0, "a changed node makes every entry stale");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
