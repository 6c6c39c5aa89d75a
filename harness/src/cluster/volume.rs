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
                Mount { mountpoint: data_dir.clone(), backing: node_dir.join("disk"), log: node_dir.join("lazyfs.log") }
            })
            .collect::<Vec<_>>();
        // No guard: a guard's SIGKILL would beat the SIGTERM a daemon needs
        // to detach its mount when the harness dies.
        let supervisor = Supervisor::start(mounts.len(), Signal::SIGTERM, None)?;
        let volumes = Volumes { config, supervisor, mounts };
        for node in 0..volumes.mounts.len() {
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
