//! lazyfs and the power-loss nemesis on real mounts: a power cut keeps
//! exactly what was fsynced; a clean stop writes everything through; and a
//! harness killed with SIGKILL leaves neither a node, nor a daemon, nor a
//! mount behind.
//!
//! Needs /dev/fuse and root; skipped with a message otherwise, unless
//! `FAULTLINE_REQUIRE_FUSE=1` (CI), where that is a failure.
mod process_support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use process_support::{fuse_or_skip, processes_mentioning, wait_for};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-lazyfs-{name}-{}", std::process::id()));
    let _ = faultline_lazyfs::detach(&dir.join("mnt"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mount(dir: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["lazyfs", dir.join("mnt").to_str().unwrap(), "--backing", dir.join("disk").to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the mount", Duration::from_secs(10), || faultline_lazyfs::is_mounted(&dir.join("mnt")));
    child
}

fn write(path: &Path, bytes: &[u8], sync: bool) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    if sync {
        file.sync_data().unwrap();
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts.lines().filter(|line| line.contains(dir.to_str().unwrap())).map(str::to_string).collect()
}

#[test]
fn a_power_cut_keeps_exactly_what_was_synced() {
    if !fuse_or_skip() {
        return;
    }
    let dir = scratch("cut");
    let mnt = dir.join("mnt");
    let mut daemon = mount(&dir);
    write(&mnt.join("wal"), b"synced-1 ", true);
    write(&mnt.join("wal"), b"synced-2 ", true);
    write(&mnt.join("wal"), b"lost", false);
    write(&mnt.join("tmp"), b"snapshot", true);
    std::fs::rename(mnt.join("tmp"), mnt.join("snapshot")).unwrap();
    write(&mnt.join("never-synced"), &[7u8; 100_000], false);
    std::fs::create_dir(mnt.join("dir")).unwrap();
    // Directory entries are durable only once their directory is fsynced.
    std::fs::File::open(&mnt).unwrap().sync_all().unwrap();
    assert_eq!(std::fs::read(mnt.join("wal")).unwrap(), b"synced-1 synced-2 lost", "readers see unsynced data");
    assert_eq!(std::fs::read(dir.join("disk/wal")).unwrap(), b"synced-1 synced-2 ", "the disk does not");

    daemon.kill().unwrap(); // The power cut: the daemon's memory is gone.
    daemon.wait().unwrap();
    faultline_lazyfs::detach(&mnt).unwrap();
    let mut daemon = mount(&dir);
    assert_eq!(std::fs::read(mnt.join("wal")).unwrap(), b"synced-1 synced-2 ");
    assert_eq!(std::fs::read(mnt.join("snapshot")).unwrap(), b"snapshot", "a synced file renamed survives");
    assert_eq!(std::fs::read(mnt.join("never-synced")).unwrap(), b"", "its entry was fsynced in its directory, its data was not");
    assert!(mnt.join("dir").is_dir());

    // A clean stop is no power cut: everything is written through.
    write(&mnt.join("wal"), b"kept", false);
    kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
    assert!(daemon.wait().unwrap().success());
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    assert_eq!(std::fs::read(dir.join("disk/wal")).unwrap(), b"synced-1 synced-2 kept");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_survives_sigkill_of_a_harness_cutting_power() {
    if !fuse_or_skip() {
        return;
    }
    let store = scratch("harness");
    let node_binary = faultline::systems::faultline_node::find_node_binary().expect("faultline-node must be built");
    let mut harness = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test", "--quiet", "--nodes", "3", "--time-limit", "60s", "--rate", "50", "--concurrency", "3"])
        .args(["--workload", "register", "--nemesis", "power-loss-random", "--seed", "3", "--name", "t"])
        .args(["--store", store.to_str().unwrap(), "--node-binary", node_binary.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = store.join("t").display().to_string();
    // Three nodes and three lazyfs daemons, each mount live.
    wait_for("nodes and daemons", Duration::from_secs(30), || processes_mentioning(&marker).len() >= 6);
    wait_for("three mounts", Duration::from_secs(30), || mounts_under(&store).len() >= 3);
    let history = store.join("t/latest/history.jsonl");
    wait_for("a power cut in the history", Duration::from_secs(40), || {
        std::fs::read_to_string(&history).is_ok_and(|text| text.contains("\"power-lost\""))
    });
    harness.kill().unwrap(); // SIGKILL: no cleanup code of the harness runs.
    harness.wait().unwrap();
    wait_for("nodes and daemons to die", Duration::from_secs(10), || processes_mentioning(&marker).is_empty());
    wait_for("the mounts to go", Duration::from_secs(10), || mounts_under(&store).is_empty());
    std::fs::remove_dir_all(&store).unwrap();
}
