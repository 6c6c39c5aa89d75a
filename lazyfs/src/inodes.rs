//! Inode numbers for the paths under the backing directory.
//!
//! FUSE names files by inode number; the backing directory is reached by
//! path. Numbers are handed out on first sight and follow renames; they are
//! never reused within one mount (the kernel may still hold an old one).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The root's number, fixed by FUSE.
pub const ROOT: u64 = 1;
/// Paths remembered at once; a directory walk beyond this is refused
/// rather than growing without bound.
pub const INODES_MAX: usize = 1 << 20;

#[derive(Debug)]
pub struct Inodes {
    /// Inode → path relative to the backing root ("" is the root).
    paths: HashMap<u64, PathBuf>,
    by_path: HashMap<PathBuf, u64>,
    next: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        Inodes::new()
    }
}

impl Inodes {
    pub fn new() -> Self {
        let mut inodes = Inodes { paths: HashMap::new(), by_path: HashMap::new(), next: ROOT + 1 };
        inodes.paths.insert(ROOT, PathBuf::new());
        inodes.by_path.insert(PathBuf::new(), ROOT);
        inodes
    }

    pub fn path(&self, ino: u64) -> Option<&Path> {
        self.paths.get(&ino).map(PathBuf::as_path)
    }

    /// The number of `path`, handing out a new one on first sight; None
    /// when the table is full.
    pub fn ino(&mut self, path: &Path) -> Option<u64> {
        if let Some(ino) = self.by_path.get(path) {
            return Some(*ino);
        }
        if self.paths.len() >= INODES_MAX {
            return None;
        }
        let ino = self.next;
        self.next += 1;
        self.paths.insert(ino, path.to_path_buf());
        self.by_path.insert(path.to_path_buf(), ino);
        Some(ino)
    }

    /// `path` and everything under it are gone; returns the numbers that
    /// named them.
    pub fn remove(&mut self, path: &Path) -> Vec<u64> {
        let gone: Vec<PathBuf> = self.by_path.keys().filter(|p| p.starts_with(path)).cloned().collect();
        let mut inos = Vec::with_capacity(gone.len());
        for p in gone {
            if let Some(ino) = self.by_path.remove(&p) {
                self.paths.remove(&ino);
                inos.push(ino);
            }
        }
        inos
    }

    /// `from` (and everything under it) is now `to`; whatever `to` named
    /// before is gone and its numbers are returned.
    pub fn rename(&mut self, from: &Path, to: &Path) -> Vec<u64> {
        let replaced = self.remove(to);
        let moved: Vec<(PathBuf, u64)> =
            self.by_path.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        for (old, ino) in moved {
            let Ok(rest) = old.strip_prefix(from) else { continue };
            let new = if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) };
            self.by_path.remove(&old);
            self.by_path.insert(new.clone(), ino);
            self.paths.insert(ino, new);
        }
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_follow_renames_and_are_not_reused() {
        let mut inodes = Inodes::new();
        assert_eq!(inodes.path(ROOT), Some(Path::new("")));
        let dir = inodes.ino(Path::new("wal")).unwrap();
        let file = inodes.ino(Path::new("wal/1.wal")).unwrap();
        let other = inodes.ino(Path::new("wal2")).unwrap();
        assert_eq!(inodes.ino(Path::new("wal/1.wal")), Some(file));
        assert!(inodes.rename(Path::new("wal"), Path::new("log")).is_empty());
        assert_eq!(inodes.path(dir), Some(Path::new("log")));
        assert_eq!(inodes.path(file), Some(Path::new("log/1.wal")));
        assert_eq!(inodes.path(other), Some(Path::new("wal2")), "a sibling sharing the name's prefix stays");
        let tmp = inodes.ino(Path::new("snap.tmp")).unwrap();
        let snap = inodes.ino(Path::new("snap")).unwrap();
        assert_eq!(inodes.rename(Path::new("snap.tmp"), Path::new("snap")), vec![snap]);
        assert_eq!(inodes.path(tmp), Some(Path::new("snap")));
        assert_eq!(inodes.path(snap), None);
        assert_eq!(inodes.remove(Path::new("log")).len(), 2);
        let again = inodes.ino(Path::new("log")).unwrap();
        assert!(again > tmp, "numbers are never reused");
    }
}
