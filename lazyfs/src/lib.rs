//! lazyfs: a FUSE file system that loses what was not fsynced when the
//! power goes, for the `power-loss` nemesis, and that can fail like a
//! sick disk on demand.
//!
//! This crate owns the file system and its daemon loop ([`serve`]); it
//! knows nothing of clusters, nodes or faultline's harness. Each node's
//! data dir is a mount of this file system over a backing directory. The
//! daemon (`faultline lazyfs`, one process per node, forked by the
//! harness's cluster supervisor) keeps written file data in its own memory
//! until that file is fsynced (see `fs.rs`, `state.rs` and `volatile.rs`),
//! and makes a directory change (create, mkdir, mknod, symlink, unlink,
//! rmdir, rename) durable only when its parent directory is fsynced (a
//! rename: the source's or the destination's parent), through an undo
//! journal beside the backing directory (`dirops.rs`, `journal.rs`,
//! `undo.rs`). A power cut is then exactly what it sounds like: SIGKILL
//! the node and the daemon together; the unsynced bytes die with the
//! daemon, the stale mount is detached, a new daemon undoes the directory
//! changes no directory fsync made durable and mounts the backing
//! directory again, and the node restarts on what was synced. Nothing in
//! it knows which system runs on top, so it works for any system under
//! test that writes its data dir through normal file calls.
//!
//! Faults, per daemon, for as long as its caller wants them: the control
//! file ([`ServeOptions::control`], syntax in [`faults`]) is read at
//! startup and again on each SIGUSR1. It can make fsync answer EIO, writes
//! answer EIO or ENOSPC (storing nothing), and reads, writes and fsyncs
//! wait a delay. A failed fsync has Linux's fsyncgate semantics: the
//! pages it failed to write are marked clean, so they stay readable
//! through the mount but nothing writes them through afterwards (not a
//! later fsync that succeeds, not the dirty bound's writeback, not a clean
//! stop) until a new write dirties the page again; the size the file grew
//! to does become durable at the file's next successful sync, so the lost
//! bytes read as zeros after a cut. SIGUSR2 is a torn power cut: the first
//! `tear-bytes` (default 2048) of the unsynced page written last go
//! through to the backing file, which is synced, and the daemon exits at
//! once with [`EXIT_TORN_CUT`], writing nothing else and leaving a stale
//! mount, as after SIGKILL. Each applied control file, rejected control
//! file and torn cut is reported as an [`Event`] through
//! [`ServeOptions::log`].
//!
//! Limits: metadata other than directory entries (chmod, chown, times) is
//! durable at once; at most [`dirops::OPS_MAX`] directory operations are
//! kept, and past that the oldest pending one becomes durable; unsynced
//! data of a file lives only in whole 4 KiB pages, and a plain cut never
//! tears a page (only SIGUSR2's cut does, one page); writes through a
//! shared writable `mmap` reach the daemon only when the kernel writes the
//! page back; hard links are refused (EPERM); the kernel's page cache keeps
//! what the node read, which is harmless because the whole mount is
//! replaced on a cut; pages poisoned by a failed fsync stay in the
//! daemon's memory (no bound) until rewritten, truncated away or unlinked,
//! where Linux could evict them and later reads would show the disk's
//! older bytes. Mounting needs `/dev/fuse` and CAP_SYS_ADMIN (root).
mod daemon;
pub mod dirops;
pub mod faults;
mod fs;
mod inodes;
mod journal;
mod state;
mod undo;
mod volatile;

use std::path::{Path, PathBuf};

pub use daemon::{Event, EXIT_TORN_CUT};
pub use state::Torn;
pub use undo::Recovered;

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    #[error("lazyfs: {path}: {source}")]
    Files { path: PathBuf, source: std::io::Error },
    #[error("lazyfs: mounting {mountpoint} over {backing} failed: {source} (power-loss needs /dev/fuse and root)")]
    Mount { mountpoint: PathBuf, backing: PathBuf, source: std::io::Error },
    #[error("lazyfs: {0}")]
    Signals(nix::errno::Errno),
    #[error("lazyfs: {0}")]
    Directories(#[from] dirops::DirOpsError),
}

/// Detach whatever is mounted at `mountpoint` (a stale mount whose daemon
/// died included); nothing mounted there is fine.
pub fn detach(mountpoint: &Path) -> std::io::Result<()> {
    match nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point; ENOENT: no such directory.
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(errno) => Err(std::io::Error::from_raw_os_error(errno as i32)),
    }
}

/// Whether this process can mount lazyfs: root and `/dev/fuse`; the error
/// says what is missing.
pub fn available() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // The effective uid is the second number of the Uid line.
    let root = status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"));
    let device = Path::new("/dev/fuse").exists();
    match (root, device) {
        (true, true) => Ok(()),
        (false, _) => Err("power-loss needs root (to mount lazyfs with FUSE)".into()),
        (true, false) => Err("power-loss needs /dev/fuse".into()),
    }
}

/// True when `path` is the root of a mount (its device differs from its
/// parent's). A stale FUSE mount answers with an error, which is `false`.
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else { return false };
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(inner), Ok(outer)) => inner.dev() != outer.dev(),
        _ => false,
    }
}

/// What a daemon did, for its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Times the dirty bound forced a file to be written back early.
    pub writebacks: u64,
}

/// How [`serve`] runs its daemon.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Unsynced bytes the mount holds before it writes the largest dirty
    /// file back on its own.
    pub dirty_max_bytes: u64,
    /// The fault control file ([`faults`]), read at startup and on each
    /// SIGUSR1; None: no faults (SIGUSR1 is logged and ignored, SIGUSR2
    /// still tears with the default `tear-bytes`).
    pub control: Option<PathBuf>,
    /// Where the daemon reports what it did: faults applied, control files
    /// rejected, torn cuts.
    pub log: fn(&Event),
}

impl ServeOptions {
    /// No control file; events go to stderr as `lazyfs: EVENT`.
    pub fn new(dirty_max_bytes: u64) -> Self {
        ServeOptions { dirty_max_bytes, control: None, log: |event| eprintln!("lazyfs: {event}") }
    }
}

/// Mount lazyfs at `mountpoint` over `backing` and serve it until SIGTERM
/// or SIGINT, which write every unsynced byte through, make every
/// directory change durable and unmount. Blocks.
///
/// First, if the last daemon over `backing` was cut, the directory
/// changes it had not made durable are undone (logged as
/// [`Event::DirectoriesRecovered`]). The journal and the trash live beside
/// `backing` (`<backing>.lazyfs-dirops`, `<backing>.lazyfs-trash/`), so
/// `backing` must not be a mount point itself.
///
/// SIGUSR1 applies the control file again; SIGUSR2 is the torn power cut,
/// after which the process exits with [`EXIT_TORN_CUT`] (this function
/// never returns then) and leaves a stale mount for its caller to detach.
pub fn serve(backing: &Path, mountpoint: &Path, options: ServeOptions) -> Result<Served, LazyFsError> {
    fn files(path: &Path) -> impl FnOnce(std::io::Error) -> LazyFsError + '_ {
        move |source| LazyFsError::Files { path: path.to_path_buf(), source }
    }
    std::fs::create_dir_all(backing).map_err(files(backing))?;
    std::fs::create_dir_all(mountpoint).map_err(files(mountpoint))?;
    let backing = backing.canonicalize().map_err(files(backing))?;
    if let Some(recovered) = undo::recover(&backing)? {
        (options.log)(&Event::DirectoriesRecovered(recovered));
    }
    // A daemon before this one may have died with its mount in place.
    detach(mountpoint).map_err(files(mountpoint))?;
    // Block the daemon's signals in every thread; one thread waits for them.
    let signals = daemon::signals();
    signals.thread_block().map_err(LazyFsError::Signals)?;
    let filesystem = fs::LazyFs::new(backing.clone(), options.dirty_max_bytes);
    let state = filesystem.shared();
    let watcher = daemon::Watcher {
        state: state.clone(),
        mountpoint: mountpoint.to_path_buf(),
        control: options.control,
        log: options.log,
    };
    watcher.load(false);
    let mut config = fuser::Config::default();
    config.mount_options =
        vec![fuser::MountOption::FSName("faultline-lazyfs".into()), fuser::MountOption::Subtype("lazyfs".into())];
    let session = fuser::Session::new(filesystem, mountpoint, &config).map_err(|source| LazyFsError::Mount {
        mountpoint: mountpoint.to_path_buf(),
        backing: backing.clone(),
        source,
    })?;
    std::thread::Builder::new()
        .name("lazyfs-signals".into())
        .spawn(move || watcher.run(signals))
        .map_err(files(mountpoint))?;
    let served = session.run();
    let writebacks = state::lock(&state).writebacks;
    served.map_err(|source| LazyFsError::Mount { mountpoint: mountpoint.to_path_buf(), backing, source })?;
    Ok(Served { writebacks })
}
