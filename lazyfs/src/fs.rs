//! The FUSE file system: a passthrough to a backing directory whose file
//! data stays in this process's memory until the file is fsynced.
//!
//! Directory operations (create, mkdir, mknod, symlink, unlink, rmdir,
//! rename) go to the backing directory through an undo journal and become
//! durable when their parent directory is fsynced (`fsyncdir`, see
//! `dirops.rs`); other metadata (chmod, chown, utimens) goes straight to
//! the backing directory; file contents and sizes (write, truncate, fallocate)
//! are volatile until `fsync`/`fdatasync` of that file, or until the dirty
//! bytes of the mount pass a bound and the largest dirty file is written
//! back (as a kernel flushing under memory pressure would). Killing the
//! process that serves this file system is the power cut. Reads, writes
//! and fsyncs first wait out the fault delay (`delay-us`) without holding
//! the state's lock; the other faults are answered by `state.rs`.
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{lock, set_metadata, State};

/// How long the kernel may cache names and attributes. Only this process
/// changes the backing directory while it is mounted, so caching is safe;
/// a power cut replaces the mount, and with it every cached entry.
const ATTR_TTL: Duration = Duration::from_secs(1);


/// The file system handed to `fuser`; `shared()` lets another thread sync
/// everything before a clean unmount.
pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

impl LazyFs {
    pub fn new(root: PathBuf, dirty_max_bytes: u64) -> Self {
        LazyFs { state: Arc::new(Mutex::new(State::new(root, dirty_max_bytes))) }
    }

    pub fn shared(&self) -> Arc<Mutex<State>> {
        self.state.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The slow disk: wait `delay_us` before serving a read, write or fsync.
    fn delay(&self) {
        let delay_us = self.lock().faults.delay_us;
        if delay_us > 0 {
            std::thread::sleep(Duration::from_micros(u64::from(delay_us)));
        }
    }
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
            let mut builder = std::fs::DirBuilder::new();
            builder.mode(mode & !umask & 0o7777);
            state.dirops.new_entry(&relative, |path| builder.create(path))?;
            state.entry(&path, &relative)
        });
        match result {
            Ok(attr) => reply.entry(&ATTR_TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        use nix::sys::stat::{mknod, Mode, SFlag};
        let kind = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
        let permissions = Mode::from_bits_truncate(mode & !umask & 0o7777);
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(path, relative)| {
            let make = |path: &Path| -> std::io::Result<()> { Ok(mknod(path, kind, permissions, u64::from(rdev))?) };
            state.dirops.new_entry(&relative, make)?;
            state.entry(&path, &relative)
        });
        match result {
            Ok(attr) => reply.entry(&ATTR_TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(_, relative)| {
            state.dirops.remove(&relative, false)?;
            let gone = state.inodes.remove(&relative);
            state.forget_removed(&gone);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.lock();
        let result = state.child(parent.0, name).and_then(|(_, relative)| {
            state.dirops.remove(&relative, true)?;
            state.inodes.remove(&relative);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let mut state = self.lock();
        let result = state.child(parent.0, link_name).and_then(|(path, relative)| {
            state.dirops.new_entry(&relative, |path| std::os::unix::fs::symlink(target, path))?;
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
            let (_, from_relative) = state.child(parent.0, name)?;
            let (_, to_relative) = state.child(newparent.0, newname)?;
            if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
                return Err(Errno::EINVAL);
            }
            let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            state.dirops.rename(&from_relative, &to_relative, no_replace)?;
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
            state.dirops.new_entry(&relative, |path| options.open(path).map(drop))?;
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
        self.delay();
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
        self.delay();
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
        self.delay();
        let result = self.lock().fsync(ino.0);
        reply_empty(reply, result);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        match self.lock().readdir(ino.0, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directories are never faulted (no delay, no EIO).
        let result = self.lock().sync_dir(ino.0);
        reply_empty(reply, result);
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
