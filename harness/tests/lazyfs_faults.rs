//! lazyfs's disk faults on real mounts, set while mounted through the
//! daemon's `--control` file and SIGUSR1: fsync and write errors, a slow
//! disk, fsyncgate (a failed fsync loses its data even after a retry
//! succeeds), and the torn power cut of SIGUSR2.
//!
//! Needs /dev/fuse and root; skipped with a message otherwise, unless
//! `FAULTLINE_REQUIRE_FUSE=1` (CI), where that is a failure.
mod lazyfs_support;
mod process_support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use lazyfs_support::Daemon;
use process_support::{fuse_or_skip, wait_child};

const PAGE: usize = 4096;

fn open(path: &Path) -> File {
    OpenOptions::new().create(true).read(true).write(true).truncate(false).open(path).unwrap()
}

fn errno(result: std::io::Result<()>) -> Option<i32> {
    result.err().and_then(|error| error.raw_os_error())
}

#[test]
fn faults_are_set_and_lifted_while_mounted() {
    if !fuse_or_skip() {
        return;
    }
    let daemon = Daemon::start("faults", "set");
    let mut file = open(&daemon.mnt().join("wal"));
    file.write_all(b"healthy ").unwrap();
    file.sync_data().unwrap();

    let applied = daemon.set("fsync=eio\n");
    assert!(applied.contains("faults applied from") && applied.contains("fsync=eio write=ok delay-us=0"), "{applied}");
    assert_eq!(errno(file.sync_data()), Some(Errno::EIO as i32));
    daemon.set("write=enospc");
    assert_eq!(errno(file.write_all(b"full")), Some(Errno::ENOSPC as i32));
    daemon.set("write=eio");
    assert_eq!(errno(file.write_all(b"broken")), Some(Errno::EIO as i32));

    daemon.set("delay-us=200000");
    let started = Instant::now();
    file.write_all(b"slow ").unwrap();
    assert!(started.elapsed() >= Duration::from_micros(200_000), "a write took {:?}", started.elapsed());
    let started = Instant::now();
    file.sync_data().unwrap();
    assert!(started.elapsed() >= Duration::from_micros(200_000), "an fsync took {:?}", started.elapsed());

    // A bad file keeps the faults in force, and says which token is bad.
    daemon.set("fsync=eio");
    let rejected = daemon.set("fsync=sometimes delay-us=5");
    assert!(rejected.contains(r#""fsync=sometimes""#) && rejected.contains("faults unchanged"), "{rejected}");
    assert_eq!(errno(file.sync_data()), Some(Errno::EIO as i32));

    daemon.set(""); // An empty file lifts every fault.
    file.write_all(b"lifted").unwrap();
    file.sync_data().unwrap();
    assert_eq!(std::fs::read(daemon.mnt().join("wal")).unwrap(), b"healthy slow lifted");
}

#[test]
fn a_failed_fsync_loses_its_data_even_after_a_retry_succeeds() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("faults", "fsyncgate");
    let mut file = open(&daemon.mnt().join("wal"));
    file.write_all(b"durable").unwrap();
    file.sync_data().unwrap();
    File::open(daemon.mnt()).unwrap().sync_all().unwrap(); // wal's entry is durable too.
    daemon.set("fsync=eio");
    file.write_all(b" lost").unwrap();
    assert_eq!(errno(file.sync_data()), Some(Errno::EIO as i32));
    daemon.set("fsync=ok");
    file.sync_data().unwrap(); // The retry "succeeds"...
    assert_eq!(std::fs::read(daemon.mnt().join("wal")).unwrap(), b"durable lost", "...and readers see the data");
    drop(file);

    daemon.cut();
    let on_disk = daemon.disk("wal");
    assert_eq!(on_disk, b"durable\0\0\0\0\0", "the size was synced, the bytes never were");
    daemon.mount();
    assert_eq!(std::fs::read(daemon.mnt().join("wal")).unwrap(), on_disk);
}

#[test]
fn a_torn_cut_writes_the_pages_before_the_last_written_one_whole_and_the_start_of_it() {
    if !fuse_or_skip() {
        return;
    }
    let mut daemon = Daemon::start("faults", "torn");
    daemon.set("tear-bytes=100");
    let file = open(&daemon.mnt().join("wal"));
    File::open(daemon.mnt()).unwrap().sync_all().unwrap(); // wal's entry is durable.
    let last: Vec<u8> = (0..PAGE).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&[7u8; PAGE], 0).unwrap();
    file.write_all_at(&last, PAGE as u64).unwrap();

    daemon.signal(Signal::SIGUSR2);
    let mut child = daemon.child.take().unwrap();
    let status = wait_child(&mut child, "the daemon after SIGUSR2", Duration::from_secs(10));
    assert_eq!(status.code(), Some(i32::from(faultline_lazyfs::EXIT_TORN_CUT)));
    let log = daemon.log();
    assert!(log.contains("torn power cut: wrote 100 bytes of") && log.contains("wal at offset 4096"), "{log}");
    let on_disk = daemon.disk("wal");
    assert_eq!(on_disk.len(), PAGE + 100);
    assert!(on_disk[..PAGE].iter().all(|b| *b == 7), "the unsynced page before the torn one reaches the disk whole: no hole");
    assert_eq!(on_disk[PAGE..], last[..100]);
    drop(file);

    faultline_lazyfs::detach(&daemon.mnt()).unwrap();
    daemon.mount();
    assert_eq!(std::fs::read(daemon.mnt().join("wal")).unwrap(), on_disk);
}
