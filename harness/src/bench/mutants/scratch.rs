//! The scratch copy of the checkout that mutants are applied to, and the
//! cargo commands run in it.
//!
//! The copy lives at `<store>/bench-mutants/scratch` and is kept between
//! benches: only files whose bytes changed are rewritten, so cargo reuses
//! its build of the dependencies. Cargo builds there in release with
//! incremental compilation and without debug info. Measured on this
//! 2-core machine for a one-operator change in `raft/node.rs`: the node's
//! test build 20.7 s and its binary 9.9 s without incremental, 2.3 s and
//! 1.3 s with it, so a mutant costs about its tests' run time (15 s).
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

/// Bounds on a build, and the floor of the node-tests timeout (which is
/// otherwise a multiple of the unmutated tests' time, as cargo-mutants'
/// own is: a mutant that makes a test hang counts as caught).
const BUILD_TIMEOUT_MS: u64 = 15 * 60_000;
const NODE_TESTS_TIMEOUT_FLOOR_MS: u64 = 60_000;
const NODE_TESTS_TIMEOUT_FACTOR: u64 = 4;

pub struct Scratch {
    pub dir: PathBuf,
    runtime: tokio::runtime::Handle,
    /// Listening from the start: a signal that comes between two cargo
    /// runs is acted on when the next one starts.
    signals: Signals,
    /// Held while the bench runs: two benches never share the copy.
    _lock: Flock<File>,
    node_tests_timeout_ms: Option<u64>,
}

/// How a cargo command ended.
pub enum CargoEnd {
    Succeeded,
    /// It failed: the first failing test (or error) the log names.
    Failed { first_failure: Option<String> },
    TimedOut,
}

impl Scratch {
    /// Locks `dir` and brings it up to date with `workspace`.
    pub fn sync(workspace: &Path, dir: &Path, runtime: tokio::runtime::Handle) -> anyhow::Result<Scratch> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock_file = File::create(dir.with_extension("lock"))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| anyhow::anyhow!("another bench mutants is using {}", dir.display()))?;
        copy_changed(workspace, &dir)?;
        let signals = runtime.block_on(async { Signals::listen() })?;
        Ok(Scratch { dir, runtime, signals, _lock: lock, node_tests_timeout_ms: None })
    }

    /// Builds the node's tests (`false`: the mutant does not build).
    pub fn build_tests(&mut self, log: &Path) -> anyhow::Result<bool> {
        let end = self.cargo(&["test", "--release", "-p", "faultline-node", "--no-run"], log, BUILD_TIMEOUT_MS)?;
        Ok(matches!(end, CargoEnd::Succeeded))
    }

    /// Runs the node's own tests, bounded by a multiple of their time
    /// without a mutant (`measure_node_tests`, called first).
    pub fn node_tests(&mut self, log: &Path) -> anyhow::Result<CargoEnd> {
        let timeout_ms = self.node_tests_timeout_ms.context("the node's tests are timed before any mutant is applied")?;
        self.cargo(&["test", "--release", "-p", "faultline-node"], log, timeout_ms)
    }

    /// The node binary built from the scratch copy, copied to `to`.
    pub fn build_node(&mut self, log: &Path, to: &Path) -> anyhow::Result<bool> {
        if !matches!(self.cargo(&["build", "--release", "-p", "faultline-node"], log, BUILD_TIMEOUT_MS)?, CargoEnd::Succeeded) {
            return Ok(false);
        }
        std::fs::copy(self.dir.join("target/release/faultline-node"), to)?;
        Ok(true)
    }

    /// Times the node's tests on the copy, once, while no mutant is
    /// applied; they must pass.
    pub fn measure_node_tests(&mut self, log: &Path) -> anyhow::Result<()> {
        if self.node_tests_timeout_ms.is_some() {
            return Ok(());
        }
        anyhow::ensure!(self.build_tests(log)?, "the node's tests do not build without a mutant: see {}", log.display());
        let started = Instant::now();
        if !matches!(self.cargo(&["test", "--release", "-p", "faultline-node"], log, BUILD_TIMEOUT_MS)?, CargoEnd::Succeeded) {
            anyhow::bail!("the node's own tests fail without a mutant: see {}", log.display());
        }
        let timeout_ms = (started.elapsed().as_millis() as u64 * NODE_TESTS_TIMEOUT_FACTOR).max(NODE_TESTS_TIMEOUT_FLOOR_MS);
        self.node_tests_timeout_ms = Some(timeout_ms);
        Ok(())
    }

    /// Runs cargo in the copy, output to `log`. Cargo runs in a process
    /// group of its own, so that a timeout kills the test binaries it
    /// started too; the group is then out of the terminal's reach, so
    /// SIGINT and SIGTERM are caught here, the group killed, and the bench
    /// ends as a signalled process would (the scratch copy's mutated file
    /// is put back by the next bench's sync).
    fn cargo(&mut self, cargo_args: &[&str], log: &Path, timeout_ms: u64) -> anyhow::Result<CargoEnd> {
        let log_file = File::create(log)?;
        let mut command = tokio::process::Command::new("cargo");
        command
            .current_dir(&self.dir)
            .args(cargo_args)
            .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0);
        let signals = &mut self.signals;
        let succeeded: anyhow::Result<Option<bool>> = self.runtime.block_on(async {
            let mut child = command.spawn().context("running cargo")?;
            let group = nix::unistd::Pid::from_raw(child.id().map_or(0, |id| id as i32));
            let kill_group = || nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let (terminate, interrupt) = (&mut signals.terminate, &mut signals.interrupt);
            let code = tokio::select! {
                status = child.wait() => return Ok(Some(status?.success())),
                _ = tokio::time::sleep(Duration::from_millis(timeout_ms)) => {
                    let _ = kill_group();
                    let _ = child.wait().await;
                    return Ok(None);
                }
                _ = terminate.recv() => 128 + 15,
                _ = interrupt.recv() => 128 + 2,
            };
            let _ = kill_group();
            let _ = child.wait().await;
            std::process::exit(code)
        });
        Ok(match succeeded? {
            Some(true) => CargoEnd::Succeeded,
            Some(false) => CargoEnd::Failed { first_failure: first_failure(&std::fs::read_to_string(log).unwrap_or_default()) },
            None => CargoEnd::TimedOut,
        })
    }
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }
}

/// The first failing test (`test raft::x ... FAILED`) or compile error.
fn first_failure(log: &str) -> Option<String> {
    let failed = log.lines().filter_map(|line| line.strip_prefix("test ")?.strip_suffix(" ... FAILED"));
    let error = log.lines().filter(|line| line.starts_with("error"));
    failed.chain(error).next().map(str::to_string)
}

/// Copies the checkout, leaving out git's store, results, and build output
/// (`target` and any `target-*` beside it: other builds' directories can
/// hold gigabytes, and a build running there changes them mid-copy), and
/// writes only files whose bytes differ so cargo sees the rest unchanged.
fn copy_changed(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let name = entry.file_name();
        let build_output = name.to_string_lossy().starts_with("target");
        if build_output || [".git", "store", "mutants.out"].iter().any(|skip| name == *skip) {
            continue;
        }
        let (source, dest) = (entry.path(), to.join(&name));
        let kind = entry.file_type().with_context(|| format!("reading {}", source.display()))?;
        if kind.is_dir() {
            copy_changed(&source, &dest)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
            if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
                std::fs::write(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_leaves_out_build_output_and_names_what_it_cannot_read() {
        let root = std::env::temp_dir().join(format!("faultline-scratch-copy-{}", std::process::id()));
        let (from, to) = (root.join("from"), root.join("to"));
        for dir in ["src", "target/release", "target-other/release", ".git"] {
            std::fs::create_dir_all(from.join(dir)).unwrap();
        }
        std::fs::write(from.join("src/lib.rs"), "pub fn a() {}").unwrap();
        std::fs::write(from.join("target-other/release/big"), "output").unwrap();
        copy_changed(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("src/lib.rs")).unwrap(), "pub fn a() {}");
        assert!(!to.join("target").exists() && !to.join("target-other").exists() && !to.join(".git").exists());
        let missing = copy_changed(&root.join("gone"), &to).unwrap_err();
        assert!(format!("{missing:#}").contains("gone"), "{missing:#}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_first_failure_is_the_first_failed_test_or_error() {
        let log = "running 3 tests\ntest a::b ... ok\ntest a::c ... FAILED\ntest a::d ... FAILED\n";
        assert_eq!(first_failure(log).as_deref(), Some("a::c"));
        assert_eq!(first_failure("error[E0308]: mismatched types\n").as_deref(), Some("error[E0308]: mismatched types"));
        assert_eq!(first_failure("test a ... ok\n"), None);
    }
}
