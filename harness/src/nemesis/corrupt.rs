//! File corruption, as Jepsen's file nemesis does it: a node is killed,
//! one of its data files (chosen by `nemesis.corrupt_files`, a glob under
//! its data dir) gets bit flips, a cut tail or a zeroed chunk, and the node
//! starts again on it. A correct system notices (a checksum) and refuses
//! to start, or starts and never serves the damaged data; one that trusts
//! its files serves it, and the checkers see values nobody wrote.
//!
//! The fault is one action, not a fault and a heal: kill, damage, start.
//! When the node refuses to start, the refusal (its last log line) is
//! recorded, the original bytes are put back, and the node starts again,
//! so the run goes on with every node; a refusal is the right answer and
//! no failed restart. Acts on this machine's files only (no
//! `cluster.hosts`).
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{choose_then_apply, node_name, CorruptMode, Effect, Fault, FaultFamily, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster, ClusterError};

/// Files a glob may name before the choice is refused as too wide.
const FILES_MAX: usize = 10_000;
/// Longest refusal line kept from a node's log.
const REFUSAL_CHARS_MAX: usize = 400;

/// What to damage and how much (`nemesis.corrupt_files`, `corrupt_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptSettings {
    /// A glob relative to the node's data dir (`**/*`: every file).
    pub files_glob: String,
    /// Bytes flipped (one bit each), most bytes cut, or bytes zeroed.
    pub bytes: u64,
}

impl Default for CorruptSettings {
    fn default() -> Self {
        CorruptSettings { files_glob: "**/*".to_string(), bytes: 1 }
    }
}

/// One change to a file, with what it replaced, so it can be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `after` written over `before` at `offset`.
    Bytes { offset: u64, before: Vec<u8>, after: Vec<u8> },
    /// The file cut from `len_before` to `len_after`; `tail` was cut off.
    Cut { len_before: u64, len_after: u64, tail: Vec<u8> },
    /// `removed` taken out at `offset`; `rest` (what followed it) moved up.
    Dropped { offset: u64, removed: Vec<u8>, rest: Vec<u8> },
}

/// The changes one fault makes to one file's `bytes` (pure: the rng and
/// the content decide). Empty for an empty file.
pub fn plan_damage(rng: &mut ChaCha8Rng, mode: CorruptMode, content: &[u8], bytes: u64) -> Vec<Change> {
    let len = content.len() as u64;
    if len == 0 {
        return Vec::new();
    }
    let count = bytes.clamp(1, len);
    match mode {
        CorruptMode::Bitflip => {
            let mut offsets = rand::seq::index::sample(rng, len as usize, count as usize).into_vec();
            offsets.sort_unstable();
            offsets
                .into_iter()
                .map(|offset| {
                    let before = content[offset];
                    let after = before ^ (1u8 << rng.random_range(0..8));
                    Change::Bytes { offset: offset as u64, before: vec![before], after: vec![after] }
                })
                .collect()
        }
        CorruptMode::Truncate => {
            let cut = rng.random_range(1..=count);
            let len_after = len - cut;
            vec![Change::Cut { len_before: len, len_after, tail: content[len_after as usize..].to_vec() }]
        }
        CorruptMode::Zero => {
            let offset = rng.random_range(0..=len - count);
            let range = offset as usize..(offset + count) as usize;
            vec![Change::Bytes { offset, before: content[range].to_vec(), after: vec![0; count as usize] }]
        }
        CorruptMode::Drop => {
            let offset = rng.random_range(0..=len - count);
            let (start, end) = (offset as usize, (offset + count) as usize);
            vec![Change::Dropped { offset, removed: content[start..end].to_vec(), rest: content[end..].to_vec() }]
        }
    }
}

/// The changes as the history shows them: offsets and lengths, no data.
fn describe(changes: &[Change]) -> serde_json::Value {
    let offsets: Vec<u64> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Bytes { offset, .. } => Some(*offset),
            Change::Cut { .. } | Change::Dropped { .. } => None,
        })
        .collect();
    match changes.first() {
        Some(Change::Cut { len_before, len_after, .. }) => json!({ "cut-from": len_before, "cut-to": len_after }),
        Some(Change::Dropped { offset, removed, .. }) => json!({ "dropped-at": offset, "bytes": removed.len() }),
        Some(Change::Bytes { after, .. }) if changes.len() == 1 => json!({ "offset": offsets[0], "bytes": after.len() }),
        _ => json!({ "offsets": offsets }),
    }
}

/// Write `changes` (or, with `undo`, what they replaced) and fsync.
fn write_changes(path: &Path, changes: &[Change], undo: bool) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    for change in changes {
        match (change, undo) {
            (Change::Bytes { offset, after, .. }, false) => write_at(&mut file, *offset, after)?,
            (Change::Bytes { offset, before, .. }, true) => write_at(&mut file, *offset, before)?,
            (Change::Cut { len_after, .. }, false) => file.set_len(*len_after)?,
            (Change::Cut { len_after, tail, .. }, true) => write_at(&mut file, *len_after, tail)?,
            (Change::Dropped { offset, rest, .. }, false) => {
                write_at(&mut file, *offset, rest)?;
                file.set_len(offset + rest.len() as u64)?;
            }
            (Change::Dropped { offset, removed, rest }, true) => {
                write_at(&mut file, *offset, removed)?;
                write_at(&mut file, offset + removed.len() as u64, rest)?;
            }
        }
    }
    file.sync_all()
}

fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Regular, non-empty files under `data_dir` that `glob` names, sorted (so
/// the seeded choice among them is stable), as paths relative to it.
pub fn matching_files(data_dir: &Path, files_glob: &str) -> Result<Vec<PathBuf>, String> {
    let pattern = data_dir.join(files_glob);
    let paths = glob::glob(&pattern.to_string_lossy()).map_err(|error| format!("nemesis.corrupt_files {files_glob:?}: {error}"))?;
    let mut files = Vec::new();
    for path in paths.flatten().take(FILES_MAX) {
        let regular = std::fs::symlink_metadata(&path).map(|meta| meta.is_file() && meta.len() > 0).unwrap_or(false);
        if let (true, Ok(relative)) = (regular, path.strip_prefix(data_dir)) {
            files.push(relative.to_path_buf());
        }
    }
    files.sort();
    Ok(files)
}

/// The last non-empty line of a node's log: why it refused to start.
pub(crate) fn last_line(log: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(log).and_then(|mut file| {
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(8 * 1024)))?;
        file.read_to_string(&mut text).map(|_| ())
    });
    let line = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("(empty log)").trim();
    line.chars().take(REFUSAL_CHARS_MAX).collect()
}

pub struct CorruptNemesis {
    rng: ChaCha8Rng,
    settings: CorruptSettings,
}

impl CorruptNemesis {
    pub fn new(rng: ChaCha8Rng, settings: CorruptSettings) -> Self {
        CorruptNemesis { rng, settings }
    }

    fn error(node: usize, message: String) -> NemesisError {
        NemesisError::Cluster(ClusterError::Config(format!("corrupt on {}: {message}", node_name(node))))
    }

    /// Kill, damage one file, start again; undo on a refusal.
    async fn corrupt(&mut self, mode: CorruptMode, node: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        cluster.kill(node).await?;
        let env = cluster.node_env(node);
        let files = matching_files(&env.data_dir, &self.settings.files_glob).map_err(|message| Self::error(node, message))?;
        let Some(relative) = files.choose(&mut self.rng).cloned() else {
            // Nothing written yet: the node starts on what it has.
            cluster.restart_all(&[node]).await?;
            return Ok(json!({ "corrupted": node_name(node), "file": null, "outcome": "no data file matched; restarted" }));
        };
        let path = env.data_dir.join(&relative);
        let file_error = |error: std::io::Error| Self::error(node, format!("{}: {error}", path.display()));
        let content = std::fs::read(&path).map_err(file_error)?;
        let changes = plan_damage(&mut self.rng, mode, &content, self.settings.bytes);
        write_changes(&path, &changes, false).map_err(file_error)?;
        let mut effect = json!({ "corrupted": node_name(node), "file": relative.display().to_string(), "mode": mode });
        effect["damage"] = describe(&changes);
        match cluster.try_restart(node).await {
            Ok(()) => effect["outcome"] = json!("started on the damaged file"),
            Err(_) => {
                effect["outcome"] = json!("refused to start; original bytes restored");
                effect["refusal"] = json!(last_line(&env.log_path));
                write_changes(&path, &changes, true).map_err(file_error)?;
                cluster.restart_all(&[node]).await?;
            }
        }
        Ok(effect)
    }
}

impl Nemesis for CorruptNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Corrupt]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, _leader: Option<usize>) -> Option<Targets> {
        let Fault::Corrupt(_) = fault else { return None };
        Some(Targets::Nodes(vec![self.rng.random_range(0..nodes)]))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Corrupt(mode), Targets::Nodes(targets)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            let &[node] = targets.as_slice() else { return Err(NemesisError::Unhandled(fault)) };
            self.corrupt(mode, node, cluster).await
        })
    }

    /// Every fault already started its node again.
    fn heal<'a>(&'a mut self, _cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async { Ok(Effect::Null) })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn apply(content: &[u8], changes: &[Change], undo: bool) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("faultline-corrupt-{}-{undo}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        std::fs::write(&path, content).unwrap();
        write_changes(&path, changes, false).unwrap();
        if undo {
            write_changes(&path, changes, true).unwrap();
        }
        let result = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn each_mode_damages_what_it_says_and_undoes_exactly() {
        let content: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for mode in [CorruptMode::Bitflip, CorruptMode::Truncate, CorruptMode::Zero, CorruptMode::Drop] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let changes = plan_damage(&mut rng, mode, &content, 8);
            let damaged = apply(&content, &changes, false);
            assert_ne!(damaged, content, "{mode:?} changed nothing");
            match mode {
                CorruptMode::Bitflip => {
                    assert_eq!(damaged.len(), content.len());
                    let differing: Vec<u8> = damaged.iter().zip(&content).map(|(a, b)| a ^ b).filter(|x| *x != 0).collect();
                    assert_eq!(differing.len(), 8, "8 bytes differ");
                    assert!(differing.iter().all(|x| x.count_ones() == 1), "one bit each");
                }
                CorruptMode::Truncate => {
                    assert!(damaged.len() < content.len() && damaged.len() >= content.len() - 8);
                    assert_eq!(damaged[..], content[..damaged.len()]);
                }
                CorruptMode::Zero => {
                    let first = damaged.iter().zip(&content).position(|(a, b)| a != b).unwrap();
                    assert!(damaged[first..first + 8].iter().all(|b| *b == 0));
                }
                CorruptMode::Drop => {
                    assert_eq!(damaged.len(), content.len() - 8);
                    let Change::Dropped { offset, .. } = &changes[0] else { panic!("{changes:?}") };
                    let at = *offset as usize;
                    assert_eq!(damaged[..at], content[..at]);
                    assert_eq!(damaged[at..], content[at + 8..]);
                }
            }
            assert_eq!(apply(&content, &changes, true), content, "{mode:?} undone exactly");
            let again = plan_damage(&mut ChaCha8Rng::seed_from_u64(7), mode, &content, 8);
            assert_eq!(again, changes, "the seed decides");
        }
    }

    #[test]
    fn small_files_are_damaged_within_their_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(plan_damage(&mut rng, CorruptMode::Bitflip, &[], 8).is_empty());
        let changes = plan_damage(&mut rng, CorruptMode::Zero, &[1, 2, 3], 8);
        assert_eq!(changes, vec![Change::Bytes { offset: 0, before: vec![1, 2, 3], after: vec![0; 3] }]);
        let changes = plan_damage(&mut rng, CorruptMode::Truncate, &[1], 8);
        assert_eq!(changes, vec![Change::Cut { len_before: 1, len_after: 0, tail: vec![1] }]);
        assert_eq!(describe(&changes), json!({ "cut-from": 1, "cut-to": 0 }));
    }

    #[test]
    fn the_glob_names_regular_non_empty_files_relative_to_the_data_dir() {
        let dir = std::env::temp_dir().join(format!("faultline-corrupt-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        std::fs::write(dir.join("wal/0001.log"), b"x").unwrap();
        std::fs::write(dir.join("wal/0002.log"), b"").unwrap();
        std::fs::write(dir.join("snapshot"), b"y").unwrap();
        assert_eq!(matching_files(&dir, "**/*").unwrap(), [PathBuf::from("snapshot"), PathBuf::from("wal/0001.log")]);
        assert_eq!(matching_files(&dir, "wal/*.log").unwrap(), [PathBuf::from("wal/0001.log")]);
        assert!(matching_files(&dir, "nothing*").unwrap().is_empty());
        assert!(matching_files(&dir, "[").unwrap_err().contains("nemesis.corrupt_files"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
