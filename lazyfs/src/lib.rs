//! lazyfs: a FUSE file system that loses what was not fsynced when the
//! power goes, for the `power-loss` nemesis.
//!
//! This crate owns the file system and its daemon loop ([`serve`]); it
//! knows nothing of clusters, nodes or faultline's harness. Each node's
//! data dir is a mount of this file system over a backing directory. The
//! daemon (`faultline lazyfs`, one process per node, forked by the
//! harness's cluster supervisor) passes every directory operation straight
//! through, but keeps written file data in its own memory until that file
//! is fsynced (see `fs.rs`, `state.rs` and `volatile.rs`). A power cut is then exactly
//! what it sounds like: SIGKILL the node and the daemon together; the
//! unsynced bytes die with the daemon, the stale mount is detached, a new
//! daemon mounts the backing directory again, and the node restarts on
//! what was synced. Nothing in it knows which system runs on top, so it
//! works for any system under test that writes its data dir through normal
//! file calls.
//!
//! Limits: directory changes (create, rename, unlink) are durable at once
//! (as if the file system journaled every one immediately, which real ones
//! do only at their next commit); unsynced data of a file lives only in
//! whole 4 KiB pages, and a cut never tears a page; writes through a
//! shared writable `mmap` reach the daemon only when the kernel writes the
//! page back; hard links are refused (EPERM); the kernel's page cache keeps
//! what the node read, which is harmless because the whole mount is
//! replaced on a cut. Mounting needs `/dev/fuse` and CAP_SYS_ADMIN (root).
mod fs;
mod inodes;
mod state;
mod volatile;



use std::path::{Path, PathBuf};

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum LazyFsError {
    #[error("lazyfs: {path}: {source}")]
    Files { path: PathBuf, source: std::io::Error },
    #[error("lazyfs: mounting {mountpoint} over {backing} failed: {source} (power-loss needs /dev/fuse and root)")]
    Mount { mountpoint: PathBuf, backing: PathBuf, source: std::io::Error },
    #[error("lazyfs: {0}")]
    Signals(nix::errno::Errno),
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

/// Mount lazyfs at `mountpoint` over `backing` and serve it until SIGTERM
/// or SIGINT, which write every unsynced byte through and unmount. Blocks.
pub fn serve(backing: &Path, mountpoint: &Path, dirty_max_bytes: u64) -> Result<Served, LazyFsError> {
    use nix::sys::signal::{SigSet, Signal};
    fn files(path: &Path) -> impl FnOnce(std::io::Error) -> LazyFsError + '_ {
        move |source| LazyFsError::Files { path: path.to_path_buf(), source }
    }
    std::fs::create_dir_all(backing).map_err(files(backing))?;
    std::fs::create_dir_all(mountpoint).map_err(files(mountpoint))?;
    let backing = backing.canonicalize().map_err(files(backing))?;
    // A daemon before this one may have died with its mount in place.
    detach(mountpoint).map_err(files(mountpoint))?;
    // Block the stop signals in every thread; one thread waits for them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    stop.thread_block().map_err(LazyFsError::Signals)?;
    let filesystem = fs::LazyFs::new(backing.clone(), dirty_max_bytes);
    let state = filesystem.shared();
    let mut config = fuser::Config::default();
    config.mount_options =
        vec![fuser::MountOption::FSName("faultline-lazyfs".into()), fuser::MountOption::Subtype("lazyfs".into())];
    let session = fuser::Session::new(filesystem, mountpoint, &config).map_err(|source| LazyFsError::Mount {
        mountpoint: mountpoint.to_path_buf(),
        backing: backing.clone(),
        source,
    })?;
    let watched = mountpoint.to_path_buf();
    let watcher_state = state.clone();
    std::thread::Builder::new()
        .name("lazyfs-signals".into())
        .spawn(move || {
            if stop.wait().is_ok() {
                // A clean shutdown is no power cut: sync, then let go.
                let _ = state::lock(&watcher_state).sync_all();
                let _ = detach(&watched);
            }
        })
        .map_err(files(mountpoint))?;
    let served = session.run();
    let writebacks = state::lock(&state).writebacks;
    served.map_err(|source| LazyFsError::Mount { mountpoint: mountpoint.to_path_buf(), backing, source })?;
    Ok(Served { writebacks })
}
