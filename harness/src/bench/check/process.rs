//! Whole-process figures for `faultline bench check`: `faultline check` run
//! as users run it (wall time and peak resident memory from `wait4`), and
//! the I/O limits: `cat FILE > /dev/null`, and reading the file into this
//! process's memory.
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// What one child process took.
pub struct ProcessFigures {
    pub wall: Duration,
    /// Peak resident set of the child alone, in MiB.
    pub peak_mib: f64,
    pub exit_code: Option<i32>,
}

/// Runs `command` to its end; its wall time and its own peak memory.
/// `wait4` gives the child's own `ru_maxrss`, where `getrusage` would give
/// the largest of every child waited for so far.
pub fn run_measured(command: &mut Command) -> anyhow::Result<ProcessFigures> {
    let started = Instant::now();
    let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().with_context(|| format!("{command:?}"))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; both pointers are to live
    // locals of the right types. `child` is never waited on afterwards.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    anyhow::ensure!(reaped == pid, "wait4 on {command:?}: {}", std::io::Error::last_os_error());
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // ru_maxrss is in KiB on Linux.
    Ok(ProcessFigures { wall, peak_mib: usage.ru_maxrss as f64 / 1024.0, exit_code })
}

/// Median wall time of `runs` runs of `cat path > /dev/null`: how fast this
/// machine hands the file's bytes to a process, the bound on any reader.
pub fn cat_time(path: &Path, runs: u32) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let figures = run_measured(Command::new("cat").arg(path))?;
        anyhow::ensure!(figures.exit_code == Some(0), "cat {} failed", path.display());
        times.push(figures.wall);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Median time of `runs` reads of the whole file into one reused 8 MiB
/// buffer (the line reader's chunk): bytes that reach user space, which
/// `cat` to /dev/null may skip (GNU cat can hand the file to the kernel).
pub fn read_time(path: &Path, runs: u32) -> anyhow::Result<Duration> {
    let mut buffer = vec![0u8; faultline_checkers::read::CHUNK_BYTES];
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let mut file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
        // Bounded by the file: each round reads bytes or ends.
        while file.read(&mut buffer)? > 0 {}
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_measured_with_its_own_exit_code_and_memory() {
        let figures = run_measured(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(figures.exit_code, Some(3));
        assert!(figures.peak_mib > 0.0 && figures.peak_mib < 1024.0, "{}", figures.peak_mib);
        let error = run_measured(&mut Command::new("/nonexistent/faultline-no-such-binary"));
        assert!(error.is_err());
    }
}
