//! lazyfs directory entries on a real mount: a create, mkdir, rename or
//! unlink survives a power cut only if its parent directory was fsynced;
//! a clean stop keeps them all.
//!
//! Needs /dev/fuse and root; skipped with a message otherwise, unless
//! `FAULTLINE_REQUIRE_FUSE=1` (CI), where that is a failure.
mod lazyfs_support;
mod process_support;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use lazyfs_support::Daemon;
use process_support::{fuse_or_skip, wait_child};

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
    let mut daemon = Daemon::start("dirs", "lost");
    let mnt = daemon.mnt();
    std::fs::create_dir(mnt.join("wal")).unwrap();
    write_synced(&mnt.join("wal/1.log"), b"entries");
    fsync_dir(&mnt.join("wal")); // The file's entry is durable in wal, wal's entry in the root is not.
    assert_eq!(std::fs::read(daemon.dir.join("disk/wal/1.log")).unwrap(), b"entries", "the disk has it until the cut");
    daemon.cut_and_mount();
    assert!(!mnt.join("wal").exists(), "the directory and the synced file in it are gone");
    let log = daemon.log();
    assert!(log.contains("undid 1 of 2 directory operations"), "{log}");
}

#[test]
fn a_directory_whose_parent_was_fsynced_survives_a_cut() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("dirs", "kept");
    let mnt = daemon.mnt();
    std::fs::create_dir(mnt.join("wal")).unwrap();
    write_synced(&mnt.join("wal/1.log"), b"entries");
    fsync_dir(&mnt.join("wal"));
    fsync_dir(&mnt);
    std::fs::create_dir(mnt.join("snap")).unwrap();
    fsync_dir(&mnt);
    write_synced(&mnt.join("snap/unlisted"), b"lost");
    daemon.cut_and_mount();
    assert_eq!(std::fs::read(mnt.join("wal/1.log")).unwrap(), b"entries");
    assert!(mnt.join("snap").is_dir(), "snap's entry was durable...");
    assert!(!mnt.join("snap/unlisted").exists(), "...the file's in snap was not");
}

#[test]
fn renames_and_unlinks_are_undone_unless_the_directory_was_fsynced() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("dirs", "rename");
    let mnt = daemon.mnt();
    write_synced(&mnt.join("snapshot"), b"old");
    write_synced(&mnt.join("segment"), b"segment");
    fsync_dir(&mnt);
    write_synced(&mnt.join("snapshot.tmp"), b"new");
    std::fs::rename(mnt.join("snapshot.tmp"), mnt.join("snapshot")).unwrap();
    std::fs::remove_file(mnt.join("segment")).unwrap();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"new");
    daemon.cut_and_mount();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"old", "the rename was undone");
    assert!(!mnt.join("snapshot.tmp").exists(), "and so was the create before it");
    assert_eq!(std::fs::read(mnt.join("segment")).unwrap(), b"segment", "the unlink was undone");

    write_synced(&mnt.join("snapshot.tmp"), b"new");
    std::fs::rename(mnt.join("snapshot.tmp"), mnt.join("snapshot")).unwrap();
    std::fs::remove_file(mnt.join("segment")).unwrap();
    fsync_dir(&mnt);
    daemon.cut_and_mount();
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"new");
    assert!(!mnt.join("segment").exists());
}

#[test]
fn a_clean_stop_keeps_every_directory_change_and_a_torn_cut_keeps_none() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("dirs", "clean");
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
