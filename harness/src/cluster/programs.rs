//! Finding the programs a cluster runs: a system's binaries on the PATH,
//! and the `faultline` binary itself, which the cluster starts again as
//! helper processes (the guard, `faultline guard`, and the lazyfs daemons,
//! `faultline lazyfs`).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ClusterError;

/// The first executable `name` in PATH, else a clear error.
pub fn find_on_path(name: &str) -> Result<PathBuf, ClusterError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| ClusterError::Config(format!("{name} not found on PATH; install it (Debian: see harness/docs/adapters.md)")))
}

/// Set by the `faultline` binary's `main`: this process is faultline,
/// whatever its file is called (a copy named `faultline-old` kept beside a
/// new build serves its own lazyfs daemons).
static THIS_PROCESS_IS_FAULTLINE: AtomicBool = AtomicBool::new(false);

/// Called once by the `faultline` binary's `main`.
pub fn this_process_is_faultline() {
    THIS_PROCESS_IS_FAULTLINE.store(true, Ordering::Relaxed);
}

/// The `faultline` binary: `FAULTLINE_BIN`, else this process when it is
/// `faultline`, else the one beside it or one directory up (where cargo
/// puts it for integration tests). A library user without one gets an
/// error: the guard is then left out and power loss is refused.
pub fn faultline_binary() -> std::io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FAULTLINE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    if THIS_PROCESS_IS_FAULTLINE.load(Ordering::Relaxed) || exe.file_name().is_some_and(|name| name == "faultline") {
        return Ok(exe);
    }
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("faultline");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no faultline binary beside {} (set FAULTLINE_BIN)", exe.display()),
    ))
}
