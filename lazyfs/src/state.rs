//! The file system's state behind one lock: the inode table, open handles
//! and each file's unsynced data, with the operations FUSE requests map to.
//! Directory changes go to the backing directory through the undo journal
//! ([`crate::dirops`]: durable at the parent's fsync); other metadata
//! changes go straight there; file contents stay volatile until `fsync`
//! (see [`crate::volatile`]). The faults in
//! force ([`crate::faults`]) live here too, so every request sees the
//! ones set last.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileType, INodeNo, ReplyDirectory, TimeOrNow,
};

use crate::dirops::DirOps;
use crate::faults::{Faults, FsyncFault, WriteFault};
use crate::inodes::Inodes;
use crate::volatile::VolatileFile;

/// A file some handle has open, or that still holds unsynced data.
pub struct OpenFile {
    pub(crate) file: File,
    pub(crate) handles: u32,
    pub(crate) volatile: VolatileFile,
}

/// Everything the file system knows, behind one lock (requests are served
/// one at a time anyway).
pub struct State {
    pub(crate) root: PathBuf,
    pub(crate) inodes: Inodes,
    /// Handle → inode.
    handles: HashMap<u64, u64>,
    handle_next: u64,
    pub(crate) open: HashMap<u64, OpenFile>,
    dirty_bytes: u64,
    dirty_max_bytes: u64,
    /// Writes that pushed the mount past its bound (written back early).
    pub writebacks: u64,
    /// The faults in force (set by the daemon's signal thread).
    pub(crate) faults: Faults,
    /// Numbers the writes, so a torn cut can find the page written last.
    write_seq: u64,
    /// Directory changes not yet durable, and their undo journal.
    pub(crate) dirops: DirOps,
}

/// What a torn power cut wrote through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// The backing file (None if its name is gone).
    pub path: Option<PathBuf>,
    pub offset: u64,
    pub bytes: u64,
}

pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while serving one request must not wedge the mount.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    pub fn new(root: PathBuf, dirty_max_bytes: u64) -> Self {
        State {
            dirops: DirOps::new(root.clone()),
            root,
            inodes: Inodes::new(),
            handles: HashMap::new(),
            handle_next: 1,
            open: HashMap::new(),
            dirty_bytes: 0,
            dirty_max_bytes,
            writebacks: 0,
            faults: Faults::default(),
            write_seq: 0,
        }
    }

    /// Write every unsynced byte through and make every directory change
    /// durable (a clean shutdown).
    pub fn sync_all(&mut self) -> io::Result<()> {
        let mut first_error = None;
        for open in self.open.values_mut() {
            if let Err(error) = open.volatile.sync(&open.file) {
                first_error.get_or_insert(error);
            }
        }
        self.dirty_bytes = self.open.values().map(|o| o.volatile.dirty_bytes()).sum();
        self.open.retain(|_, open| open.handles > 0 || !open.volatile.is_clean());
        if let Err(error) = self.dirops.commit_all() {
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.inodes.path(ino).map(|p| self.root.join(p)).ok_or(Errno::ENOENT)
    }

    /// fsyncdir: the directory's pending entries become durable (a
    /// directory removed meanwhile has nothing to sync, as on Linux).
    pub fn sync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        let Some(relative) = self.inodes.path(ino) else { return Ok(()) };
        let relative = relative.to_path_buf();
        self.dirops.sync_dir(&relative)
    }

    pub fn child(&self, parent: u64, name: &OsStr) -> Result<(PathBuf, PathBuf), Errno> {
        let relative = self.inodes.path(parent).ok_or(Errno::ENOENT)?.join(name);
        Ok((self.root.join(&relative), relative))
    }

    pub fn ino(&mut self, relative: &Path) -> Result<u64, Errno> {
        self.inodes.ino(relative).ok_or(Errno::ENFILE)
    }

    /// Attributes as readers see them: the backing file's, with the
    /// volatile size.
    pub fn attr(&self, ino: u64, metadata: &Metadata) -> FileAttr {
        let mut attr = attr_of(ino, metadata);
        if let Some(open) = self.open.get(&ino) {
            attr.size = open.volatile.size();
            attr.blocks = attr.size.div_ceil(512);
        }
        attr
    }

    pub fn attr_of_ino(&self, ino: u64) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(self.path(ino)?)?;
        Ok(self.attr(ino, &metadata))
    }

    /// The open entry of `ino`, opening the backing file if needed.
    pub fn open_entry(&mut self, ino: u64) -> Result<&mut OpenFile, Errno> {
        if !self.open.contains_key(&ino) {
            let path = self.path(ino)?;
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(error) if error.raw_os_error() == Some(libc_eacces()) => File::open(&path)?,
                Err(error) => return Err(error.into()),
            };
            let size = file.metadata()?.len();
            self.open.insert(ino, OpenFile { file, handles: 0, volatile: VolatileFile::new(size) });
        }
        self.open.get_mut(&ino).ok_or(Errno::EIO)
    }

    pub fn new_handle(&mut self, ino: u64) -> Result<u64, Errno> {
        self.open_entry(ino)?.handles += 1;
        let handle = self.handle_next;
        self.handle_next += 1;
        self.handles.insert(handle, ino);
        Ok(handle)
    }

    /// A write request; a write fault answers before anything is stored.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        match self.faults.write {
            WriteFault::Ok => {}
            WriteFault::Eio => return Err(Errno::EIO),
            WriteFault::Enospc => return Err(Errno::ENOSPC),
        }
        let open = self.open.get_mut(&ino).ok_or(Errno::EBADF)?;
        self.write_seq += 1;
        let grown = open.volatile.write(&open.file, offset, data, self.write_seq)?;
        self.dirty_bytes += grown;
        if self.dirty_bytes > self.dirty_max_bytes {
            self.write_back_largest()?;
        }
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    pub fn write_back_largest(&mut self) -> Result<(), Errno> {
        let largest = self.open.iter().max_by_key(|(_, o)| o.volatile.dirty_bytes()).map(|(ino, _)| *ino);
        if let Some(ino) = largest {
            self.sync(ino)?;
            self.writebacks += 1;
        }
        Ok(())
    }

    /// An fsync request. Under `fsync=eio` it fails and poisons the file's
    /// dirty pages: no later sync of any kind writes them (fsyncgate).
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        if self.faults.fsync == FsyncFault::Ok {
            return self.sync(ino);
        }
        if let Some(open) = self.open.get_mut(&ino) {
            self.dirty_bytes -= open.volatile.poison();
        }
        Err(Errno::EIO)
    }

    /// Write one file's dirty pages through (fsync, or an early writeback).
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        let Some(open) = self.open.get_mut(&ino) else { return Ok(()) };
        let before = open.volatile.dirty_bytes();
        open.volatile.sync(&open.file)?;
        // Only poisoned pages are left, and they are not dirty.
        self.dirty_bytes -= before;
        Ok(())
    }

    /// The torn power cut: the first `faults.tear_bytes` bytes of the dirty
    /// page written last go through to the backing file, which is then
    /// synced; nothing else is written. Ok(None) when nothing is dirty.
    pub fn tear(&self) -> Result<Option<Torn>, (Torn, io::Error)> {
        let last = self.open.iter().filter_map(|(ino, open)| Some((*ino, open, open.volatile.last_written(self.faults.tear_bytes)?)));
        let Some((ino, open, page)) = last.max_by_key(|(_, _, page)| page.write_seq) else { return Ok(None) };
        let torn = Torn { path: self.path(ino).ok(), offset: page.offset, bytes: page.bytes.len() as u64 };
        // The file's unsynced pages below the torn one reach the disk
        // whole, so the cut leaves a torn tail, never a hole before it (a
        // hole left a WAL "corrupt" mid-file, not torn).
        let below = open.volatile.whole_pages_before(page.offset);
        let written = below
            .into_iter()
            .try_for_each(|(offset, bytes)| open.file.write_all_at(bytes, offset))
            .and_then(|()| open.file.write_all_at(page.bytes, page.offset))
            .and_then(|()| open.file.sync_data());
        match written {
            Ok(()) => Ok(Some(torn)),
            Err(error) => Err((torn, error)),
        }
    }

    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let open = self.open_entry(ino)?;
        let before = open.volatile.dirty_bytes();
        open.volatile.truncate(size);
        let after = open.volatile.dirty_bytes();
        self.dirty_bytes = self.dirty_bytes - before + after;
        Ok(())
    }

    /// Forget files whose names are gone, unless a handle still has them.
    pub fn forget_removed(&mut self, inos: &[u64]) {
        for ino in inos {
            if self.open.get(ino).is_some_and(|open| open.handles == 0) {
                if let Some(open) = self.open.remove(ino) {
                    self.dirty_bytes -= open.volatile.dirty_bytes();
                }
            }
        }
    }

    pub fn release(&mut self, handle: u64) {
        let Some(ino) = self.handles.remove(&handle) else { return };
        let Some(open) = self.open.get_mut(&ino) else { return };
        open.handles = open.handles.saturating_sub(1);
        if open.handles == 0 && open.volatile.is_clean() {
            self.open.remove(&ino);
        }
    }

    pub fn readdir(&mut self, ino: u64, offset: u64, reply: &mut ReplyDirectory) -> Result<(), Errno> {
        let relative = self.inodes.path(ino).ok_or(Errno::ENOENT)?.to_path_buf();
        let mut entries: Vec<(u64, FileType, std::ffi::OsString)> =
            vec![(ino, FileType::Directory, ".".into()), (ino, FileType::Directory, "..".into())];
        for entry in std::fs::read_dir(self.root.join(&relative))? {
            let entry = entry?;
            let kind = entry.file_type().ok().and_then(FileType::from_std).unwrap_or(FileType::RegularFile);
            let child = self.ino(&relative.join(entry.file_name()))?;
            entries.push((child, kind, entry.file_name()));
        }
        for (index, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, &name) {
                break;
            }
        }
        Ok(())
    }

    pub fn entry(&mut self, path: &Path, relative: &Path) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(path)?;
        let ino = self.ino(relative)?;
        Ok(self.attr(ino, &metadata))
    }
}

pub fn libc_eacces() -> i32 {
    nix::errno::Errno::EACCES as i32
}

pub fn time_of(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = u32::try_from(nanos).unwrap_or(0).min(999_999_999);
    match u64::try_from(seconds) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

pub fn attr_of(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time_of(m.atime(), m.atime_nsec()),
        mtime: time_of(m.mtime(), m.mtime_nsec()),
        ctime: time_of(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile),
        perm: (m.mode() & 0o7777) as u16,
        nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
        uid: m.uid(),
        gid: m.gid(),
        rdev: u32::try_from(m.rdev()).unwrap_or(0),
        blksize: 4096,
        flags: 0,
    }
}

pub fn system_time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// Apply the metadata half of a setattr to the backing path.
pub fn set_metadata(
    path: &Path,
    mode: Option<u32>,
    owner: (Option<u32>, Option<u32>),
    times: (Option<TimeOrNow>, Option<TimeOrNow>),
) -> Result<(), Errno> {
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    if owner.0.is_some() || owner.1.is_some() {
        std::os::unix::fs::lchown(path, owner.0, owner.1)?;
    }
    if times.0.is_some() || times.1.is_some() {
        let mut file_times = std::fs::FileTimes::new();
        if let Some(atime) = times.0 {
            file_times = file_times.set_accessed(system_time(atime));
        }
        if let Some(mtime) = times.1 {
            file_times = file_times.set_modified(system_time(mtime));
        }
        File::open(path)?.set_times(file_times)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
