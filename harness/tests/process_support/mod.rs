//! Shared by the tests that check what is left running: live processes
//! found through /proc, bounded waiting, and whether FUSE and libfaketime tests may run.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::time::{Duration, Instant};

/// Pids of live processes whose command line (argv words joined by NUL)
/// mentions `marker`; zombies and this process are left out.
pub fn processes_mentioning(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return pids };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // A zombie is dead; its parent just has not reaped it (yet).
        let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// Poll `done` every 20 ms; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `child` to exit; after `timeout` kill it and panic naming
/// `what` (a wedged harness must not hang the test suite).
pub fn wait_child(child: &mut std::process::Child, what: &str, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: did not finish in {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when lazyfs can mount here (root and /dev/fuse); otherwise says
/// SKIP and why, unless `FAULTLINE_REQUIRE_FUSE=1` (CI), where it panics.
pub fn fuse_or_skip() -> bool {
    let Err(why) = faultline_lazyfs::available() else { return true };
    if std::env::var("FAULTLINE_REQUIRE_FUSE").as_deref() == Ok("1") {
        panic!("FAULTLINE_REQUIRE_FUSE=1 but {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

/// True when libfaketime is installed; otherwise says SKIP, unless
/// `FAULTLINE_REQUIRE_ADAPTERS=1` (CI installs it), where it panics.
pub fn faketime_or_skip() -> bool {
    let Err(why) = faultline::cluster::find_libfaketime() else { return true };
    if std::env::var("FAULTLINE_REQUIRE_ADAPTERS").as_deref() == Ok("1") {
        panic!("FAULTLINE_REQUIRE_ADAPTERS=1 but {why}");
    }
    eprintln!("SKIP: {why}");
    false
}
