//! Start-up after a power cut: undo the directory operations the journal
//! does not call durable, newest first, so the backing directory shows
//! only the entries whose parent was fsynced.
//!
//! - a new entry is removed (a directory with all it holds: files in a
//!   directory whose entry was lost are lost too);
//! - a removed entry comes back from the trash;
//! - a rename is renamed back, and the entry it replaced comes back.
//!
//! Later operations that are durable stay: paths are followed through the
//! renames they made (a pending create in `a` that a durable rename moved
//! to `b` is undone in `b`), and an entry that a durable operation itself
//! moved or removed is left where that operation put it. Entries already
//! gone are skipped (ENOENT), and an entry is never restored over one that
//! is there, so undoing twice (a daemon killed while undoing) is harmless.
//! Then the journal is removed and the trash emptied.
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::dirops::{remove_tree, sibling, DirOpsError, JOURNAL_SUFFIX, TRASH_SUFFIX};
use crate::journal::{parse, Change, Op, Record};

/// What start-up found in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub journal: PathBuf,
    /// Operations the journal held.
    pub operations: u64,
    /// Those not durable, undone.
    pub undone: u64,
}

/// Undo what the last daemon's cut lost (None: no journal, the last stop
/// was clean or there was none), and leave an empty trash on the backing
/// directory's file system. `root` is the canonical backing directory.
pub fn recover(root: &Path) -> Result<Option<Recovered>, DirOpsError> {
    if root.file_name().is_none() {
        return Err(DirOpsError::NoName(root.to_path_buf()));
    }
    let journal = sibling(root, JOURNAL_SUFFIX);
    let trash = sibling(root, TRASH_SUFFIX);
    let files = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DirOpsError::Files { path, source }
    };
    let recovered = match std::fs::read(&journal) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(DirOpsError::Files { path: journal, source }),
        Ok(bytes) => {
            let records = parse(&bytes)
                .map_err(|(line, reason)| DirOpsError::Corrupt { path: journal.clone(), line, reason })?;
            let ops = with_durability(records);
            let undone = undo(root, &trash, &ops)?;
            std::fs::remove_file(&journal).map_err(files(&journal))?;
            Some(Recovered { journal: journal.clone(), operations: ops.len() as u64, undone })
        }
    };
    remove_tree(&trash).map_err(files(&trash))?;
    std::fs::create_dir(&trash).map_err(files(&trash))?;
    let device = |path: &Path| std::fs::metadata(path).map(|m| m.dev()).map_err(files(path));
    if device(&trash)? != device(root)? {
        return Err(DirOpsError::OtherDevice { trash, backing: root.to_path_buf() });
    }
    Ok(recovered)
}

/// Each operation in journal order, with whether a `done` record follows.
fn with_durability(records: Vec<Record>) -> Vec<(Op, bool)> {
    let mut ops = Vec::new();
    let mut index_of = HashMap::new();
    for record in records {
        match record {
            Record::Op(op) => {
                index_of.insert(op.seq, ops.len());
                ops.push((op, false));
            }
            Record::Done(seq) => {
                if let Some(index) = index_of.get(&seq) {
                    ops[*index].1 = true;
                }
            }
        }
    }
    ops
}

/// Undo the operations not durable, newest first; returns how many.
pub fn undo(root: &Path, trash: &Path, ops: &[(Op, bool)]) -> Result<u64, DirOpsError> {
    // Only durable removals and renames move paths for older operations.
    let moves: Vec<usize> = (0..ops.len())
        .filter(|index| ops[*index].1 && !matches!(ops[*index].0.change, Change::New { .. }))
        .collect();
    let mut undone = 0;
    for (index, (op, durable)) in ops.iter().enumerate().rev() {
        if *durable {
            continue;
        }
        let later = &moves[moves.partition_point(|moved| *moved < index)..];
        let place_of = |path: &Path, whole: bool| follow(path, later.iter().map(|moved| &ops[*moved].0.change), whole);
        let trashed = trash.join(op.seq.to_string());
        match &op.change {
            Change::New { path } => {
                if let Place::Here(path) = place_of(path, true) {
                    let path = root.join(path);
                    remove_tree(&path).map_err(|source| DirOpsError::Files { path, source })?;
                }
            }
            Change::Remove { path } => {
                if let Place::Here(slot) = place_of(path, false) {
                    restore(&trashed, &root.join(slot))?;
                }
            }
            Change::Rename { from, to, replaced } => {
                if let (Place::Here(now), Place::Here(slot)) = (place_of(to, true), place_of(from, false)) {
                    restore(&root.join(now), &root.join(slot))?;
                }
                if *replaced {
                    if let Place::Here(slot) = place_of(to, false) {
                        restore(&trashed, &root.join(slot))?;
                    }
                }
            }
        }
        undone += 1;
    }
    Ok(undone)
}

/// Where a path of an older operation is after the later durable ones.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Here(PathBuf),
    /// A durable operation moved or removed the entry itself: it stays.
    Decided,
}

/// Follow `path` through `later` changes (in their order). `whole`: the
/// entry itself (moved by a rename of it, gone with it); otherwise the
/// slot its name takes (moved only by renames of a directory above it).
fn follow<'a>(path: &Path, later: impl Iterator<Item = &'a Change>, whole: bool) -> Place {
    let inside = |path: &Path, above: &Path| path.starts_with(above) && (whole || path != above);
    let mut place = path.to_path_buf();
    for change in later {
        match change {
            Change::New { .. } => {}
            Change::Remove { path: removed } => {
                if inside(&place, removed) {
                    return Place::Decided;
                }
            }
            Change::Rename { from, to, replaced } => {
                if inside(&place, from) {
                    if place == *from {
                        return Place::Decided;
                    }
                    place = match place.strip_prefix(from) {
                        Ok(rest) => to.join(rest),
                        Err(_) => return Place::Decided,
                    };
                } else if *replaced && inside(&place, to) {
                    return Place::Decided;
                }
            }
        }
    }
    Place::Here(place)
}

/// Move `from` back to `to`, unless `to` is taken or either is gone.
fn restore(from: &Path, to: &Path) -> Result<(), DirOpsError> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Ok(());
    }
    match std::fs::rename(from, to) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(DirOpsError::Files { path: to.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}
