//! lazyfs directory entries on a real mount: a create, mkdir, rename or
//! unlink survives a power cut only if its parent directory was fsynced;
//! a clean stop keeps them all.
//!
//! Needs /dev/fuse and root; skipped with a message otherwise, unless
//! `FAULTLINE_REQUIRE_FUSE=1` (CI), where that is a failure.
mod process_support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use process_support::{fuse_or_skip, wait_child, wait_for};

/// One daemon over `<dir>/disk` at `<dir>/mnt`, logging to
/// `<dir>/lazyfs.log`. Dropping it kills the daemon, detaches the mount
/// and removes the directory (the journal and trash beside `disk` too).
struct Daemon {
    dir: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("faultline-lazyfs-dirs-{name}-{}", std::process::id()));
        let _ = faultline_lazyfs::detach(&dir.join("mnt"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut daemon = Daemon { dir, child: None };
        daemon.mount();
        daemon
    }

    fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("lazyfs.log")).unwrap_or_default()
    }

    fn mount(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(self.dir.join("lazyfs.log")).unwrap();
        let path = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["lazyfs", &path("mnt"), "--backing", &path("disk")])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the mount", Duration::from_secs(10), || faultline_lazyfs::is_mounted(&self.mnt()));
    }

    /// The power cut: SIGKILL, detach the stale mount, mount again.
    fn cut(&mut self) {
        let mut child = self.child.take().expect("a running daemon");
        child.kill().unwrap();
        child.wait().unwrap();
        faultline_lazyfs::detach(&self.mnt()).unwrap();
        self.mount();
    }

    /// SIGTERM, the clean stop, then mount again.
    fn stop_and_mount(&mut self) {
        let mut child = self.child.take().expect("a running daemon");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        assert!(wait_child(&mut child, "the daemon after SIGTERM", Duration::from_secs(10)).success());
        assert!(!faultline_lazyfs::is_mounted(&self.mnt()));
        self.mount();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = faultline_lazyfs::detach(&self.mnt());
        if std::thread::panicking() {
            eprintln!("lazyfs log of {}:\n{}", self.dir.display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Create `path` with `bytes`, fsynced (the data is durable; the entry
/// is what is at stake).
fn write_synced(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

fn fsync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn a_directory_whose_parent_was_never_fsynced_is_lost_at_a_cut() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("lost");
    let mnt = daemon.mnt();
    std::fs::create_dir(mnt.join("wal")).unwrap();
    write_synced(&mnt.join("wal/1.log"), b"entries");
    fsync_dir(&mnt.join("wal")); // The file's entry is durable in wal, wal's entry in the root is not.
    assert_eq!(std::fs::read(daemon.dir.join("disk/wal/1.log")).unwrap(), b"entries", "the disk has it until the cut");
    daemon.cut();
    assert!(!mnt.join("wal").exists(), "the directory and the synced file in it are gone");
    let log = daemon.log();
    assert!(log.contains("undid 1 of 2 directory operations"), "{log}");
}

#[test]
fn a_directory_whose_parent_was_fsynced_survives_a_cut() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("kept");
    let mnt = daemon.mnt();
    std::fs::create_dir(mnt.join("wal")).unwrap();
    write_synced(&mnt.join("wal/1.log"), b"entries");
    fsync_dir(&mnt.join("wal"));
    fsync_dir(&mnt);
    std::fs::create_dir(mnt.join("snap")).unwrap();
    fsync_dir(&mnt);
    write_synced(&mnt.join("snap/unlisted"), b"lost");
    daemon.cut();
    assert_eq!(std::fs::read(mnt.join("wal/1.log")).unwrap(), b"entries");
    assert!(mnt.join("snap").is_dir(), "snap's entry was durable...");
    assert!(!mnt.join("snap/unlisted").exists(), "...the file's in snap was not");
}

#[test]
fn renames_and_unlinks_are_undone_unless_the_directory_was_fsynced() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("rename");
    let mnt = daemon.mnt();
    write_synced(&mnt.join("snapshot"), b"old");
    write_synced(&mnt.join("segment"), b"segment");
    fsync_dir(&mnt);
    write_synced(&mnt.join("snapshot.tmp"), b"new");
    std::fs::rename(mnt.join("snapshot.tmp"), mnt.join("snapshot")).unwrap();
    std::fs::remove_file(mnt.join("segment")).unwrap();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"new");
    daemon.cut();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"old", "the rename was undone");
    assert!(!mnt.join("snapshot.tmp").exists(), "and so was the create before it");
    assert_eq!(std::fs::read(mnt.join("segment")).unwrap(), b"segment", "the unlink was undone");

    write_synced(&mnt.join("snapshot.tmp"), b"new");
    std::fs::rename(mnt.join("snapshot.tmp"), mnt.join("snapshot")).unwrap();
    std::fs::remove_file(mnt.join("segment")).unwrap();
    fsync_dir(&mnt);
    daemon.cut();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"new");
    assert!(!mnt.join("segment").exists());
}

#[test]
fn a_clean_stop_keeps_every_directory_change_and_a_torn_cut_keeps_none() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("clean");
    let mnt = daemon.mnt();
    std::fs::create_dir(mnt.join("dir")).unwrap();
    write_synced(&mnt.join("dir/file"), b"data");
    std::os::unix::fs::symlink("dir/file", mnt.join("link")).unwrap();
    daemon.stop_and_mount();
    assert_eq!(std::fs::read(mnt.join("link")).unwrap(), b"data", "a clean stop is no power cut");
    assert!(!daemon.dir.join("disk.lazyfs-dirops").exists(), "no journal is left after a clean stop");

    // SIGUSR2 (the torn cut, exit code 4) loses directory changes too.
    std::fs::create_dir(mnt.join("torn")).unwrap();
    let mut child = daemon.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR2).unwrap();
    let status = wait_child(&mut child, "the daemon after SIGUSR2", Duration::from_secs(10));
    assert_eq!(status.code(), Some(i32::from(faultline_lazyfs::EXIT_TORN_CUT)));
    faultline_lazyfs::detach(&mnt).unwrap();
    daemon.mount();
    assert!(!mnt.join("torn").exists());
    assert_eq!(std::fs::read(mnt.join("dir/file")).unwrap(), b"data");
}
