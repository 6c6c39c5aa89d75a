//! Power-loss volumes: each node's data dir is a lazyfs mount (see
//! the `faultline-lazyfs` crate) served by its own `faultline lazyfs` daemon, so a power
//! cut can drop exactly what the node wrote but did not fsync.
//!
//! The daemons are children of a supervisor of their own whose children get
//! SIGTERM, not SIGKILL, when the harness dies: a daemon then writes its data
//! through and detaches its mount, so no mount outlives the harness.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::db::NodeLaunch;
use super::supervisor::Supervisor;
use super::{ClusterError, NodeState};
use faultline_lazyfs as lazyfs;

/// How to run the volumes of a cluster.
#[derive(Clone, Debug)]
pub struct VolumeConfig {
    /// The `faultline` binary (it serves `faultline lazyfs`).
    pub program: PathBuf,
    /// Unsynced bytes one mount holds before it writes back on its own.
    pub dirty_max_mib: u64,
}

/// The disk faults one volume serves, as its daemon's control file says
/// them (`faultline lazyfs --control`); the default is a healthy disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// fsync answers EIO, and what it failed to sync never reaches the disk.
    pub fsync_eio: bool,
    /// Writes answer ENOSPC.
    pub full: bool,
    /// Writes answer EIO (`full` wins when both are set).
    pub write_eio: bool,
    /// Every read, write and fsync waits this long first.
    pub delay_us: u64,
    /// At a torn power cut, how much of the last unsynced page reaches the disk.
    pub tear_bytes: Option<u32>,
}

impl DiskFaults {
    /// The control file's one line.
    pub fn control_line(&self) -> String {
        let mut tokens = vec![
            format!("fsync={}", if self.fsync_eio { "eio" } else { "ok" }),
            format!("write={}", if self.full { "enospc" } else if self.write_eio { "eio" } else { "ok" }),
            format!("delay-us={}", self.delay_us),
        ];
        if let Some(bytes) = self.tear_bytes {
            tokens.push(format!("tear-bytes={bytes}"));
        }
        tokens.join(" ") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_say_each_fault_as_lazyfs_reads_them() {
        assert_eq!(DiskFaults::default().control_line(), "fsync=ok write=ok delay-us=0\n");
        let failing = DiskFaults { fsync_eio: true, write_eio: true, delay_us: 250, tear_bytes: Some(100), ..DiskFaults::default() };
        assert_eq!(failing.control_line(), "fsync=eio write=eio delay-us=250 tear-bytes=100\n");
        assert_eq!(DiskFaults { full: true, write_eio: true, ..DiskFaults::default() }.control_line(), "fsync=ok write=enospc delay-us=0\n");
    }
}

/// Bound on a daemon mounting its file system.
const MOUNT_TIMEOUT_MS: u64 = 10_000;
const MOUNT_POLL_MS: u64 = 5;

/// Where one node's volume lives.
#[derive(Clone, Debug)]
struct Mount {
    /// What the node sees: its data dir.
    mountpoint: PathBuf,
    /// What survives a power cut.
    backing: PathBuf,
    log: PathBuf,
    /// The disk faults the daemon reads at SIGUSR1.
    control: PathBuf,
}

pub(crate) struct Volumes {
    config: VolumeConfig,
    supervisor: Supervisor,
    mounts: Vec<Mount>,
}

impl Volumes {
    /// Mount a volume at every node's data dir, backed by `<node dir>/disk`.
    pub(crate) async fn start(config: VolumeConfig, data_dirs: &[PathBuf]) -> Result<Volumes, ClusterError> {
        let mounts = data_dirs
            .iter()
            .map(|data_dir| {
                let node_dir = data_dir.parent().unwrap_or(Path::new("."));
                Mount {
                    mountpoint: data_dir.clone(),
                    backing: node_dir.join("disk"),
                    log: node_dir.join("lazyfs.log"),
                    control: node_dir.join("lazyfs.control"),
                }
            })
            .collect::<Vec<_>>();
        // No guard: a guard's SIGKILL would beat the SIGTERM a daemon needs
        // to detach its mount when the harness dies.
        let supervisor = Supervisor::start(mounts.len(), Signal::SIGTERM, None)?;
        let volumes = Volumes { config, supervisor, mounts };
        for node in 0..volumes.mounts.len() {
            // Every disk starts healthy; after a power cut a new daemon
            // serves what the control file says (a failing disk still fails).
            let control = &volumes.mounts[node].control;
            if let Err(source) = std::fs::write(control, DiskFaults::default().control_line()) {
                volumes.stop().await;
                return Err(ClusterError::Files { path: control.clone(), source });
            }
            if let Err(error) = volumes.mount(node).await {
                volumes.stop().await;
                return Err(error);
            }
        }
        Ok(volumes)
    }

    /// The power cut: the daemon dies with every unsynced byte, its stale
    /// mount is detached, and a new daemon mounts what was synced. The
    /// node must already be dead (its open files die with the mount).
    pub(crate) async fn cut(&self, node: usize) -> Result<(), ClusterError> {
        self.supervisor.kill(node).await?;
        self.detach(node)?;
        self.mount(node).await
    }

    /// Serve `faults` from now on: the control file, then SIGUSR1 to the
    /// daemon, which reads it.
    pub(crate) fn set_faults(&self, node: usize, faults: &DiskFaults) -> Result<(), ClusterError> {
        let mount = &self.mounts[node];
        std::fs::write(&mount.control, faults.control_line())
            .map_err(|source| ClusterError::Files { path: mount.control.clone(), source })?;
        self.signal(node, Signal::SIGUSR1)
    }

    /// A power cut that tears a page: the daemon writes `tear_bytes` of
    /// the last page written but not synced, and dies with the rest
    /// (SIGUSR2); the stale mount is detached and a new daemon mounts
    /// what the disk kept. The node must already be dead.
    pub(crate) async fn cut_torn(&self, node: usize, tear_bytes: u32) -> Result<(), ClusterError> {
        let faults = DiskFaults { tear_bytes: Some(tear_bytes), ..DiskFaults::default() };
        self.set_faults(node, &faults)?;
        self.supervisor.signal_and_reap(node, Signal::SIGUSR2).await?;
        // Bounded: a daemon that did not die of SIGUSR2 dies of SIGKILL.
        self.supervisor.kill(node).await?;
        self.detach(node)?;
        self.mount(node).await
    }

    fn signal(&self, node: usize, signal: Signal) -> Result<(), ClusterError> {
        let Some(pid) = self.supervisor.pid(node) else {
            return Err(self.error(node, "its lazyfs daemon is not running".to_string()));
        };
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(pid, signal).map_err(|errno| self.error(node, format!("cannot signal its lazyfs daemon: {errno}")))
    }

    /// Stop every daemon cleanly (each syncs and detaches), then make sure
    /// no mount is left. Idempotent.
    pub(crate) async fn stop(&self) {
        for node in 0..self.mounts.len() {
            let _ = self.supervisor.signal_and_reap(node, Signal::SIGTERM).await;
        }
        self.supervisor.stop().await;
        self.detach_all();
    }

    /// `stop` for code that cannot await: kills the daemons (no sync).
    pub(crate) fn stop_blocking(&self) {
        self.supervisor.stop_blocking();
        self.detach_all();
    }

    fn detach_all(&self) {
        for node in 0..self.mounts.len() {
            let _ = self.detach(node);
        }
    }

    fn detach(&self, node: usize) -> Result<(), ClusterError> {
        let mount = &self.mounts[node];
        lazyfs::detach(&mount.mountpoint).map_err(|error| self.error(node, format!("cannot detach: {error}")))
    }

    async fn mount(&self, node: usize) -> Result<(), ClusterError> {
        let mount = self.mounts[node].clone();
        let launch = NodeLaunch {
            program: self.config.program.clone(),
            args: vec![
                "lazyfs".into(),
                mount.mountpoint.display().to_string(),
                "--backing".into(),
                mount.backing.display().to_string(),
                "--dirty-max-mib".into(),
                self.config.dirty_max_mib.to_string(),
                "--control".into(),
                mount.control.display().to_string(),
            ],
            env: Vec::new(),
            files: Vec::new(),
        };
        self.supervisor.spawn(node, launch, mount.log.clone()).await?;
        let mounted = self.wait_mounted(node).await;
        if !mounted {
            let _ = self.supervisor.kill(node).await;
            let at = self.mounts[node].mountpoint.display();
            return Err(self.error(node, format!("not mounted at {at} within {MOUNT_TIMEOUT_MS} ms")));
        }
        self.supervisor.started(node);
        Ok(())
    }

    /// Poll (cheap stat calls) until the mount is live or the daemon has
    /// exited; bounded by MOUNT_TIMEOUT_MS.
    async fn wait_mounted(&self, node: usize) -> bool {
        let deadline = Instant::now() + Duration::from_millis(MOUNT_TIMEOUT_MS);
        while Instant::now() < deadline {
            if lazyfs::is_mounted(&self.mounts[node].mountpoint) {
                return true;
            }
            if self.supervisor.state(node) == NodeState::Killed {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(MOUNT_POLL_MS)).await;
        }
        false
    }

    fn error(&self, node: usize, message: String) -> ClusterError {
        ClusterError::Volume { node, message, log: self.mounts[node].log.clone() }
    }
}
