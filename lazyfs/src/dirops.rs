//! Directory entries that become durable only when their parent directory
//! is fsynced, as POSIX promises and no more.
//!
//! The backing directory always holds what a restart after a power cut
//! must see once the undo journal is applied; the daemon's memory is lost
//! at the cut. So every directory operation is first appended to the
//! journal (`<backing>.lazyfs-dirops`, a sibling of the backing
//! directory, see [`crate::journal`]) and then applied to the backing
//! directory, and removals are undoable: unlink and rmdir move the entry
//! into the trash (`<backing>.lazyfs-trash/SEQ`, on the same file system,
//! so rename(2) moves it), and a rename over an existing entry moves that
//! entry there first. Open handles keep working: they hold fds.
//!
//! `fsyncdir(D)` makes durable every pending operation whose parent is D
//! (a rename has two parents: the source's and the destination's, and
//! either one's fsync makes it durable, as ext4 and XFS journal a rename
//! as one transaction): it appends a `done` record and deletes the trash
//! entries that became final. Parents are told apart by the backing
//! directory's inode number, so renaming a directory does not change
//! which fsync makes the entries inside it durable. A cut leaves the
//! journal behind; the next daemon undoes what is not `done`
//! ([`crate::undo`]) before it mounts. A clean stop makes everything
//! durable: the journal is removed, then the trash.
//!
//! Bound: at most [`OPS_MAX`] operations are kept, counted from the
//! oldest pending one (durable ones after it are kept too, because undo
//! follows the renames they made). Past it the oldest pending operation
//! is made durable, as a kernel would eventually write it back, and
//! counted in [`DirOps::forced`]. The journal file is truncated whenever
//! nothing is pending and rewritten once it holds more than twice the
//! records kept (plus [`REWRITE_SLACK_RECORDS`]).
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fuser::Errno;

use crate::journal::{encode, Change, Op, Record};

/// Operations kept at once (see the module's bound).
pub const OPS_MAX: usize = 100_000;
/// Records the journal file may hold beyond twice those kept before it is
/// rewritten with only the kept ones.
pub const REWRITE_SLACK_RECORDS: u64 = 1024;
/// Appended to the backing directory's name: the journal, then the trash.
pub const JOURNAL_SUFFIX: &str = ".lazyfs-dirops";
pub const TRASH_SUFFIX: &str = ".lazyfs-trash";

/// Errors of the journal and trash at start-up (while serving, a failure
/// is an errno answered to the request).
#[derive(Debug, thiserror::Error)]
pub enum DirOpsError {
    #[error("{path}: {source}")]
    Files { path: PathBuf, source: io::Error },
    #[error("directory journal {path}, line {line}: {reason}")]
    Corrupt { path: PathBuf, line: u64, reason: String },
    #[error("backing directory {0} has no name, so its journal and trash have no place beside it")]
    NoName(PathBuf),
    #[error("trash {trash} is not on the file system of {backing}, so entries cannot be renamed into it")]
    OtherDevice { trash: PathBuf, backing: PathBuf },
}

/// `<root>SUFFIX`, beside the backing directory `root`.
pub fn sibling(root: &Path, suffix: &str) -> PathBuf {
    let mut name = root.file_name().unwrap_or(OsStr::new("lazyfs")).to_os_string();
    name.push(suffix);
    root.with_file_name(name)
}

/// Remove `path` whatever it is (a directory with all it holds); already
/// gone is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match removed {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn parent_of(relative: &Path) -> &Path {
    relative.parent().unwrap_or(Path::new(""))
}

/// One operation kept: `parents` are the inode numbers of the backing
/// directories whose fsync makes it durable.
#[derive(Debug)]
struct Kept {
    op: Op,
    parents: [u64; 2],
    durable: bool,
}

#[derive(Debug)]
pub struct DirOps {
    root: PathBuf,
    journal_path: PathBuf,
    trash: PathBuf,
    /// Opened at the first operation (a stale journal is replaced then).
    journal: Option<File>,
    records_in_journal: u64,
    /// From the oldest pending operation on; the front is never durable.
    kept: VecDeque<Kept>,
    seq_next: u64,
    ops_max: usize,
    /// Operations made durable early by the bound.
    pub forced: u64,
}

impl DirOps {
    pub fn new(root: PathBuf) -> Self {
        DirOps::with_bound(root, OPS_MAX)
    }

    pub fn with_bound(root: PathBuf, ops_max: usize) -> Self {
        assert!(ops_max > 0, "ops_max must be positive");
        DirOps {
            journal_path: sibling(&root, JOURNAL_SUFFIX),
            trash: sibling(&root, TRASH_SUFFIX),
            root,
            journal: None,
            records_in_journal: 0,
            kept: VecDeque::new(),
            seq_next: 0,
            ops_max,
            forced: 0,
        }
    }

    /// Operations not yet durable.
    pub fn pending(&self) -> usize {
        self.kept.iter().filter(|kept| !kept.durable).count()
    }

    /// A new entry at `relative` (create, mkdir, mknod, symlink), which
    /// `make` creates at the backing path. An entry already there is no
    /// change to journal (a create that opens an existing file; EEXIST).
    pub fn new_entry(&mut self, relative: &Path, make: impl FnOnce(&Path) -> io::Result<()>) -> Result<(), Errno> {
        let path = self.root.join(relative);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Ok(make(&path)?);
        }
        let parent = self.dir_id(parent_of(relative))?;
        let seq = self.begin(Change::New { path: relative.to_path_buf() }, [parent, parent])?;
        make(&path).map_err(|error| self.abort(seq, error))
    }

    /// unlink (`directory` false) or rmdir: the entry goes to the trash,
    /// after the checks the kernel would have made.
    pub fn remove(&mut self, relative: &Path, directory: bool) -> Result<(), Errno> {
        let path = self.root.join(relative);
        let metadata = std::fs::symlink_metadata(&path)?;
        match (directory, metadata.is_dir()) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) if std::fs::read_dir(&path)?.next().is_some() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let parent = self.dir_id(parent_of(relative))?;
        let seq = self.begin(Change::Remove { path: relative.to_path_buf() }, [parent, parent])?;
        let trashed = self.trashed(seq);
        std::fs::rename(&path, trashed).map_err(|error| self.abort(seq, error))
    }

    /// rename(2) of `from` to `to`; an entry `to` named goes to the trash.
    pub fn rename(&mut self, from: &Path, to: &Path, no_replace: bool) -> Result<(), Errno> {
        let (from_path, to_path) = (self.root.join(from), self.root.join(to));
        let source = std::fs::symlink_metadata(&from_path)?;
        let target = match std::fs::symlink_metadata(&to_path) {
            Ok(target) => Some(target),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error.into()),
        };
        if let Some(target) = &target {
            if no_replace {
                return Err(Errno::EEXIST);
            }
            if (source.dev(), source.ino()) == (target.dev(), target.ino()) {
                return Ok(()); // Two names of one file: rename(2) does nothing.
            }
            match (source.is_dir(), target.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if std::fs::read_dir(&to_path)?.next().is_some() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let parents = [self.dir_id(parent_of(from))?, self.dir_id(parent_of(to))?];
        let replaced = target.is_some();
        let change = Change::Rename { from: from.to_path_buf(), to: to.to_path_buf(), replaced };
        let seq = self.begin(change, parents)?;
        let trashed = self.trashed(seq);
        if replaced {
            if let Err(error) = std::fs::rename(&to_path, &trashed) {
                return Err(self.abort(seq, error));
            }
        }
        if let Err(error) = std::fs::rename(&from_path, &to_path) {
            if replaced {
                let _ = std::fs::rename(&trashed, &to_path);
            }
            return Err(self.abort(seq, error));
        }
        Ok(())
    }

    /// fsyncdir: every pending operation with `relative` as a parent is
    /// durable from now on.
    pub fn sync_dir(&mut self, relative: &Path) -> Result<(), Errno> {
        let id = self.dir_id(relative)?;
        let synced: Vec<usize> = (0..self.kept.len())
            .filter(|index| !self.kept[*index].durable && self.kept[*index].parents.contains(&id))
            .collect();
        if synced.is_empty() {
            return Ok(());
        }
        let records: Vec<u8> = synced.iter().flat_map(|index| encode(&Record::Done(self.kept[*index].op.seq))).collect();
        self.append(&records, synced.len() as u64)?;
        for index in synced {
            self.made_durable(index);
        }
        self.compact();
        Ok(())
    }

    /// A clean stop: everything is durable. The journal goes first (the
    /// commit point), then the trash.
    pub fn commit_all(&mut self) -> io::Result<()> {
        self.kept.clear();
        self.journal = None;
        self.records_in_journal = 0;
        match std::fs::remove_file(&self.journal_path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        remove_tree(&self.trash)
    }

    fn trashed(&self, seq: u64) -> PathBuf {
        self.trash.join(seq.to_string())
    }

    /// The identity of the backing directory `relative`.
    fn dir_id(&self, relative: &Path) -> Result<u64, Errno> {
        Ok(std::fs::symlink_metadata(self.root.join(relative))?.ino())
    }

    /// Journal `change` before it is applied; returns its number.
    fn begin(&mut self, change: Change, parents: [u64; 2]) -> Result<u64, Errno> {
        // Bounded: each round makes the front durable and drops it.
        while self.kept.len() >= self.ops_max {
            let before = self.kept.len();
            self.force_oldest()?;
            assert!(self.kept.len() < before, "forcing the oldest operation must drop it");
        }
        let op = Op { seq: self.seq_next, change };
        self.append(&encode(&Record::Op(op.clone())), 1)?;
        self.seq_next += 1;
        let seq = op.seq;
        self.kept.push_back(Kept { op, parents, durable: false });
        Ok(seq)
    }

    /// The operation `seq` (the last begun) failed: nothing to undo.
    fn abort(&mut self, seq: u64, error: io::Error) -> Errno {
        let index = self.kept.iter().rposition(|kept| kept.op.seq == seq);
        if let Some(index) = index {
            if self.append(&encode(&Record::Done(seq)), 1).is_ok() {
                self.kept[index].durable = true;
                self.compact();
            }
        }
        error.into()
    }

    fn force_oldest(&mut self) -> Result<(), Errno> {
        let Some(front) = self.kept.front() else { return Ok(()) };
        assert!(!front.durable, "the front of the kept operations is pending");
        self.append(&encode(&Record::Done(front.op.seq)), 1)?;
        self.made_durable(0);
        self.forced += 1;
        self.compact();
        Ok(())
    }

    /// Mark durable (its `done` record is written) and delete its trash.
    fn made_durable(&mut self, index: usize) {
        let kept = &mut self.kept[index];
        kept.durable = true;
        let trashed = match kept.op.change {
            Change::Remove { .. } | Change::Rename { replaced: true, .. } => self.trash.join(kept.op.seq.to_string()),
            _ => return,
        };
        // A trash entry left behind is deleted at the next start.
        let _ = remove_tree(&trashed);
    }

    /// Drop durable operations from the front; keep the file short. A
    /// failure here only leaves the file longer.
    fn compact(&mut self) {
        while self.kept.front().is_some_and(|kept| kept.durable) {
            self.kept.pop_front();
        }
        if self.kept.is_empty() {
            if let Some(journal) = &self.journal {
                if journal.set_len(0).is_ok() {
                    self.records_in_journal = 0;
                }
            }
        } else if self.records_in_journal > 2 * self.kept.len() as u64 + REWRITE_SLACK_RECORDS {
            let _ = self.rewrite();
        }
    }

    /// Replace the journal with the kept records (a new file renamed over
    /// it, so a cut sees the old or the new one whole).
    fn rewrite(&mut self) -> io::Result<()> {
        let mut records = 0;
        let mut bytes = Vec::new();
        for kept in &self.kept {
            bytes.extend(encode(&Record::Op(kept.op.clone())));
            records += 1;
            if kept.durable {
                bytes.extend(encode(&Record::Done(kept.op.seq)));
                records += 1;
            }
        }
        let fresh = sibling(&self.journal_path, ".new");
        // Append mode, as the journal's: a later truncation to zero must
        // not leave the next record at the old offset.
        remove_tree(&fresh)?;
        let mut file = OpenOptions::new().create_new(true).append(true).open(&fresh)?;
        file.write_all(&bytes)?;
        std::fs::rename(&fresh, &self.journal_path)?;
        // The fd follows the renamed file; later records go after these.
        self.journal = Some(file);
        self.records_in_journal = records;
        Ok(())
    }

    /// Append whole records (one write(2): a killed process loses no
    /// write it made, so no fsync is needed).
    fn append(&mut self, bytes: &[u8], records: u64) -> Result<(), Errno> {
        if self.journal.is_none() {
            self.journal = Some(self.open_journal().map_err(|_| Errno::EIO)?);
        }
        let Some(journal) = self.journal.as_mut() else { return Err(Errno::EIO) };
        journal.write_all(bytes).map_err(|_| Errno::EIO)?;
        self.records_in_journal += records;
        Ok(())
    }

    /// The first record of this daemon: a journal left by an earlier one
    /// was undone at start-up (or belongs to a test), so it is replaced.
    fn open_journal(&self) -> io::Result<File> {
        std::fs::create_dir_all(&self.trash)?;
        match std::fs::remove_file(&self.journal_path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        OpenOptions::new().create_new(true).append(true).open(&self.journal_path)
    }
}

#[cfg(test)]
#[path = "dirops_tests.rs"]
mod tests;
