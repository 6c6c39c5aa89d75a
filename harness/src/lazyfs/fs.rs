//! The FUSE file system: a passthrough to a backing directory whose file
//! data stays in this process's memory until the file is fsynced.
//!
//! Metadata operations (create, mkdir, unlink, rename, chmod, utimens) go
//! straight to the backing directory, as if every directory change were
//! journaled at once; file contents and sizes (write, truncate, fallocate)
//! are volatile until `fsync`/`fdatasync` of that file, or until the dirty
//! bytes of the mount pass a bound and the largest dirty file is written
//! back (as a kernel flushing under memory pressure would). Killing the
//! process that serves this file system is the power cut.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::inodes::Inodes;
use super::volatile::VolatileFile;

/// How long the kernel may cache names and attributes. Only this process
/// changes the backing directory while it is mounted, so caching is safe;
/// a power cut replaces the mount, and with it every cached entry.
const ATTR_TTL: Duration = Duration::from_secs(1);

/// A file some handle has open, or that still holds unsynced data.
struct OpenFile {
    file: File,
    handles: u32,
    volatile: VolatileFile,
}

/// Everything the file system knows, behind one lock (requests are served
/// one at a time anyway).
pub struct State {
    root: PathBuf,
    inodes: Inodes,
    /// Handle → inode.
    handles: HashMap<u64, u64>,
    handle_next: u64,
    open: HashMap<u64, OpenFile>,
    dirty_bytes: u64,
    dirty_max_bytes: u64,
    /// Writes that pushed the mount past its bound (written back early).
    pub writebacks: u64,
}

/// The file system handed to `fuser`; `shared()` lets another thread sync
/// everything before a clean unmount.
pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

impl LazyFs {
    pub fn new(root: PathBuf, dirty_max_bytes: u64) -> Self {
        let state = State {
            root,
            inodes: Inodes::new(),
            handles: HashMap::new(),
            handle_next: 1,
            open: HashMap::new(),
            dirty_bytes: 0,
            dirty_max_bytes,
            writebacks: 0,
        };
        LazyFs { state: Arc::new(Mutex::new(state)) }
    }

    pub fn shared(&self) -> Arc<Mutex<State>> {
        self.state.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while serving one request must not wedge the mount.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// Write every unsynced byte through (a clean shutdown).
    pub fn sync_all(&mut self) -> io::Result<()> {
        let mut first_error = None;
        for open in self.open.values_mut() {
            if let Err(error) = open.volatile.sync(&open.file) {
                first_error.get_or_insert(error);
            }
        }
        self.dirty_bytes = self.open.values().map(|o| o.volatile.dirty_bytes()).sum();
        self.open.retain(|_, open| open.handles > 0);
        first_error.map_or(Ok(()), Err)
    }

    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes
    }

    fn path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.inodes.path(ino).map(|p| self.root.join(p)).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<(PathBuf, PathBuf), Errno> {
        let relative = self.inodes.path(parent).ok_or(Errno::ENOENT)?.join(name);
        Ok((self.root.join(&relative), relative))
    }

    fn ino(&mut self, relative: &Path) -> Result<u64, Errno> {
        self.inodes.ino(relative).ok_or(Errno::ENFILE)
    }

    /// Attributes as readers see them: the backing file's, with the
    /// volatile size.
    fn attr(&self, ino: u64, metadata: &Metadata) -> FileAttr {
        let mut attr = attr_of(ino, metadata);
        if let Some(open) = self.open.get(&ino) {
            attr.size = open.volatile.size();
            attr.blocks = attr.size.div_ceil(512);
        }
        attr
    }

    fn attr_of_ino(&self, ino: u64) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(self.path(ino)?)?;
        Ok(self.attr(ino, &metadata))
    }

    /// The open entry of `ino`, opening the backing file if needed.
    fn open_entry(&mut self, ino: u64) -> Result<&mut OpenFile, Errno> {
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

    fn new_handle(&mut self, ino: u64) -> Result<u64, Errno> {
        self.open_entry(ino)?.handles += 1;
        let handle = self.handle_next;
        self.handle_next += 1;
        self.handles.insert(handle, ino);
        Ok(handle)
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let open = self.open.get_mut(&ino).ok_or(Errno::EBADF)?;
        let grown = open.volatile.write(&open.file, offset, data)?;
        self.dirty_bytes += grown;
        if self.dirty_bytes > self.dirty_max_bytes {
            self.write_back_largest()?;
        }
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    fn write_back_largest(&mut self) -> Result<(), Errno> {
        let largest = self.open.iter().max_by_key(|(_, o)| o.volatile.dirty_bytes()).map(|(ino, _)| *ino);
        if let Some(ino) = largest {
            self.sync(ino)?;
            self.writebacks += 1;
        }
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        let Some(open) = self.open.get_mut(&ino) else { return Ok(()) };
        let before = open.volatile.dirty_bytes();
        open.volatile.sync(&open.file)?;
        self.dirty_bytes -= before;
        Ok(())
    }

    fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let open = self.open_entry(ino)?;
        let before = open.volatile.dirty_bytes();
        open.volatile.truncate(size);
        let after = open.volatile.dirty_bytes();
        self.dirty_bytes = self.dirty_bytes - before + after;
        Ok(())
    }

    /// Forget files whose names are gone, unless a handle still has them.
    fn forget_removed(&mut self, inos: &[u64]) {
        for ino in inos {
            if self.open.get(ino).is_some_and(|open| open.handles == 0) {
                if let Some(open) = self.open.remove(ino) {
                    self.dirty_bytes -= open.volatile.dirty_bytes();
                }
            }
        }
    }

    fn release(&mut self, handle: u64) {
        let Some(ino) = self.handles.remove(&handle) else { return };
        let Some(open) = self.open.get_mut(&ino) else { return };
        open.handles = open.handles.saturating_sub(1);
        if open.handles == 0 && open.volatile.is_clean() {
            self.open.remove(&ino);
        }
    }

    fn readdir(&mut self, ino: u64, offset: u64, reply: &mut ReplyDirectory) -> Result<(), Errno> {
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

    fn entry(&mut self, path: &Path, relative: &Path) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(path)?;
        let ino = self.ino(relative)?;
        Ok(self.attr(ino, &metadata))
    }
}

fn libc_eacces() -> i32 {
    nix::errno::Errno::EACCES as i32
}

fn time_of(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = u32::try_from(nanos).unwrap_or(0).min(999_999_999);
    match u64::try_from(seconds) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

fn attr_of(ino: u64, m: &Metadata) -> FileAttr {
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

fn system_time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// Apply the metadata half of a setattr to the backing path.
fn set_metadata(
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

impl Filesystem for LazyFs {
    fn destroy(&mut self) {
        let _ = self.lock().sync_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(path, relative)| state.entry(&path, &relative));
        match result {
            Ok(attr) => reply.entry(&ATTR_TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().attr_of_ino(ino.0) {
            Ok(attr) => reply.attr(&ATTR_TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.lock();
        let result = (|| {
            let path = state.path(ino.0)?;
            set_metadata(&path, mode, (uid, gid), (atime, mtime))?;
            if let Some(size) = size {
                state.truncate(ino.0, size)?;
            }
            state.attr_of_ino(ino.0)
        })();
        match result {
            Ok(attr) => reply.attr(&ATTR_TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self.lock().path(ino.0).and_then(|path| Ok(std::fs::read_link(path)?));
        match result {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(errno) => reply.error(errno),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(path, relative)| {
            std::fs::DirBuilder::new().mode(mode & !umask & 0o7777).create(&path)?;
            state.entry(&path, &relative)
        });
        match result {
            Ok(attr) => reply.entry(&ATTR_TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(path, relative)| {
            std::fs::remove_file(&path)?;
            let gone = state.inodes.remove(&relative);
            state.forget_removed(&gone);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(path, relative)| {
            std::fs::remove_dir(&path)?;
            state.inodes.remove(&relative);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let mut state = self.lock();
        let result = state.child(parent.0, link_name).and_then(|(path, relative)| {
            std::os::unix::fs::symlink(target, &path)?;
            state.entry(&path, &relative)
        });
        match result {
            Ok(attr) => reply.entry(&ATTR_TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.lock();
        let result = (|| {
            let (from, from_relative) = state.child(parent.0, name)?;
            let (to, to_relative) = state.child(newparent.0, newname)?;
            if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
                return Err(Errno::EINVAL);
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) && std::fs::symlink_metadata(&to).is_ok() {
                return Err(Errno::EEXIST);
            }
            std::fs::rename(&from, &to)?;
            let replaced = state.inodes.rename(&from_relative, &to_relative);
            state.forget_removed(&replaced);
            Ok(())
        })();
        reply_empty(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.lock().new_handle(ino.0) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(errno) => reply.error(errno),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.lock();
        let result = (|| {
            let (path, relative) = state.child(parent.0, name)?;
            let exclusive = flags & nix::fcntl::OFlag::O_EXCL.bits() != 0;
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(mode & !umask & 0o7777);
            if exclusive {
                options.create_new(true);
            } else {
                options.create(true);
            }
            drop(options.open(&path)?);
            let attr = state.entry(&path, &relative)?;
            let handle = state.new_handle(attr.ino.0)?;
            Ok((attr, handle))
        })();
        match result {
            Ok((attr, handle)) => {
                reply.created(&ATTR_TTL, &attr, Generation(0), FileHandle(handle), FopenFlags::empty())
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.lock();
        let result = match state.open.get(&ino.0) {
            Some(open) => open.volatile.read(&open.file, offset, size).map_err(Errno::from),
            None => Err(Errno::EBADF),
        };
        match result {
            Ok(data) => reply.data(&data),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.lock().write(ino.0, offset, data) {
            Ok(written) => reply.written(written),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close() is not a durability point.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().release(fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let result = self.lock().sync(ino.0);
        reply_empty(reply, result);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        match self.lock().readdir(ino.0, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory changes are durable as soon as they are made.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.lock().root.clone();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                u32::try_from(s.block_size()).unwrap_or(4096),
                u32::try_from(s.name_max()).unwrap_or(255),
                u32::try_from(s.fragment_size()).unwrap_or(4096),
            ),
            Err(errno) => reply.error(Errno::from_i32(errno as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let mut state = self.lock();
        let result = (|| {
            let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
            let size = state.open_entry(ino.0)?.volatile.size();
            if end > size {
                state.truncate(ino.0, end)?;
            }
            Ok(())
        })();
        reply_empty(reply, result);
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}
