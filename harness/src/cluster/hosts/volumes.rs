//! Power loss on hosts: each node's data dir on its host is a lazyfs mount
//! served by `faultline lazyfs` there (the faultline binary is uploaded),
//! started and signalled like a node (`Role::Lazyfs`). A cut kills the
//! daemon with every unsynced byte, detaches the stale mount and mounts
//! what was synced again, as on this machine (`cluster::volume`).
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::ssh::quote;
use super::{Hosts, Role};
use crate::cluster::supervisor::{RemoteSignal, Supervisor};
use crate::cluster::{ClusterError, NodeLaunch, NodeState, VolumeConfig};

/// Bound on a daemon mounting its file system.
const MOUNT_TIMEOUT_MS: u64 = 10_000;
const MOUNT_POLL_MS: u64 = 20;

pub(crate) struct RemoteVolumes {
    hosts: Arc<Hosts>,
    config: VolumeConfig,
    supervisor: Supervisor,
    slots: usize,
}

impl RemoteVolumes {
    /// Mount a volume at every slot's data dir on its host, backed by
    /// `node-<i>/disk` beside it.
    pub(crate) async fn start(hosts: Arc<Hosts>, config: VolumeConfig, slots: usize) -> Result<RemoteVolumes, ClusterError> {
        let supervisor = Supervisor::start(slots, Signal::SIGKILL, None)?;
        let signaller = hosts.clone();
        let remote: RemoteSignal =
            Arc::new(move |node, signal| signaller.signal(Role::Lazyfs, node, signal).map_err(|error| error.to_string()));
        supervisor.set_remote(remote);
        let volumes = RemoteVolumes { hosts, config, supervisor, slots };
        for node in 0..slots {
            if let Err(error) = volumes.mount(node).await {
                volumes.stop().await;
                return Err(error);
            }
        }
        Ok(volumes)
    }

    /// The power cut; the node must already be dead.
    pub(crate) async fn cut(&self, node: usize) -> Result<(), ClusterError> {
        self.supervisor.kill(node).await?;
        self.detach(node).await?;
        self.mount(node).await
    }

    /// Stop every daemon cleanly (each syncs and detaches), then make sure
    /// no mount is left. Idempotent.
    pub(crate) async fn stop(&self) {
        for node in 0..self.slots {
            let _ = self.supervisor.signal_and_reap(node, Signal::SIGTERM).await;
        }
        self.supervisor.stop().await;
        for node in 0..self.slots {
            let _ = self.detach(node).await;
        }
    }

    /// `stop` for code that cannot await: the daemons are killed (a host's
    /// mounts go with its namespace, or at the next run's start-up).
    pub(crate) fn stop_blocking(&self) {
        self.supervisor.stop_blocking();
    }

    fn mountpoint(&self, node: usize) -> String {
        self.hosts.data_dir(node).display().to_string()
    }

    async fn mount(&self, node: usize) -> Result<(), ClusterError> {
        let mountpoint = self.mountpoint(node);
        let backing = format!("{}/disk", mountpoint.trim_end_matches("/data"));
        let host = &self.hosts.hosts[node];
        host.ssh.run(&format!("mkdir -p {} {}", quote(&mountpoint), quote(&backing))).await?;
        let launch = NodeLaunch {
            program: self.config.program.clone(),
            args: vec![
                "lazyfs".into(),
                mountpoint.clone(),
                "--backing".into(),
                backing,
                "--dirty-max-mib".into(),
                self.config.dirty_max_mib.to_string(),
            ],
            ..NodeLaunch::default()
        };
        // On a hang-up the daemon gets SIGTERM first: it writes its data
        // through and detaches its mount.
        let hangup = format!(
            "kill -s TERM -- -$child; sleep 2; kill -s KILL -- -$child 2>/dev/null; {}umount -l {} 2>/dev/null",
            host.privileged(""),
            quote(&mountpoint)
        );
        let remote = self.hosts.remote_launch(Role::Lazyfs, node, &launch, &hangup).await?;
        let log = self.hosts.local_dir.join(format!("lazyfs-{node}.log"));
        self.supervisor.spawn(node, remote, log).await?;
        if !self.wait_mounted(node).await {
            let _ = self.supervisor.kill(node).await;
            return Err(ClusterError::Volume {
                node,
                message: format!("not mounted at {mountpoint} on host {} within {MOUNT_TIMEOUT_MS} ms", host.address),
                log: self.hosts.local_dir.join(format!("lazyfs-{node}.log")),
            });
        }
        self.supervisor.started(node);
        Ok(())
    }

    /// Poll the host until the mount is live (its device differs from its
    /// parent's) or the daemon has exited; bounded.
    async fn wait_mounted(&self, node: usize) -> bool {
        let mountpoint = quote(&self.mountpoint(node));
        let check = format!("[ \"$(stat -c %d {mountpoint})\" != \"$(stat -c %d {mountpoint}/..)\" ]");
        let deadline = Instant::now() + Duration::from_millis(MOUNT_TIMEOUT_MS);
        while Instant::now() < deadline {
            if self.hosts.hosts[node].ssh.run(&check).await.is_ok() {
                return true;
            }
            if self.supervisor.state(node) == NodeState::Killed {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(MOUNT_POLL_MS)).await;
        }
        false
    }

    async fn detach(&self, node: usize) -> Result<(), ClusterError> {
        let host = &self.hosts.hosts[node];
        let script = format!("{}umount -l {} 2>/dev/null; exit 0", host.privileged(""), quote(&self.mountpoint(node)));
        Ok(host.ssh.run(&script).await.map(|_| ())?)
    }
}
