//! Disk faults, served by each node's lazyfs volume (FUSE, root): fsync
//! answers EIO (on one node or a majority), writes answer EIO or ENOSPC, every
//! I/O waits, or a power cut tears the last page a node wrote but did not
//! sync.
//!
//! A correct system stops (or refuses writes) on a disk it cannot trust and
//! acknowledges nothing it could not sync; lazyfs never writes pages whose
//! fsync failed (Linux's fsyncgate behaviour), so a system that retries the
//! fsync and carries on loses them at the next power cut. While a fault is
//! in force on a node, the node stopping on its own is expected; the heal
//! lifts the faults, says which nodes stopped (and why, from their logs)
//! and starts them again on a remounted volume, as after a reboot.
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::corrupt::last_line;
use super::kill::kill_count;
use super::{choose_nodes, choose_then_apply, node_name, node_names, DiskMode, Effect, Fault, FaultFamily, KillTarget, Nemesis, NemesisError, Targets};
use crate::cluster::{BoxFuture, Cluster, DiskFaults, NodeState};

/// How long after lifting a fault a node's own exit still counts as its
/// answer to the fault: an answer in flight, the node's exit, and the
/// supervisor's reaping (every 20 ms) take a few ms.
const LIFT_GRACE_MS: u64 = 300;
/// Most bytes of a page a torn cut writes (a page is 4 KiB).
const TEAR_BYTES_MAX: u32 = 4095;

/// `nemesis.disk_delay`: how long each I/O of a `disk-slow` node waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSettings {
    pub delay_us: u64,
}

impl Default for DiskSettings {
    fn default() -> Self {
        DiskSettings { delay_us: 10_000 }
    }
}

pub struct DiskNemesis {
    rng: ChaCha8Rng,
    settings: DiskSettings,
    /// Nodes whose volumes serve a fault now, with the pid each ran as
    /// when the fault began.
    faulted: Vec<(usize, Option<u32>)>,
    /// Nodes down after a torn power cut.
    cut: Vec<usize>,
}

impl DiskNemesis {
    pub fn new(rng: ChaCha8Rng, settings: DiskSettings) -> Self {
        DiskNemesis { rng, settings, faulted: Vec::new(), cut: Vec::new() }
    }

    fn faults(&self, mode: DiskMode) -> DiskFaults {
        match mode {
            DiskMode::FsyncEio | DiskMode::FsyncEioMajority => DiskFaults { fsync_eio: true, ..DiskFaults::default() },
            DiskMode::WriteEio => DiskFaults { write_eio: true, ..DiskFaults::default() },
            DiskMode::Full => DiskFaults { full: true, ..DiskFaults::default() },
            DiskMode::Slow => DiskFaults { delay_us: self.settings.delay_us, ..DiskFaults::default() },
            DiskMode::TornWrite => DiskFaults::default(),
        }
    }

    async fn tear(&mut self, node: usize, cluster: &Cluster) -> Result<Effect, NemesisError> {
        let tear_bytes = self.rng.random_range(1..=TEAR_BYTES_MAX);
        self.cut.push(node);
        cluster.power_cut_torn(node, tear_bytes).await?;
        Ok(json!({ "power-lost": node_name(node), "torn-page-bytes": tear_bytes }))
    }

    /// Lift every fault; the nodes that stopped under one, with why. A
    /// node another nemesis restarted meanwhile counts as stopped: it may
    /// have read pages whose fsync failed, which never reach the disk.
    /// Which nodes stopped is judged `LIFT_GRACE_MS` after the lift, and
    /// until then a node's own exit stays expected: a node answered EIO
    /// just before the lift exits just after it (seen once in 16 runs of
    /// the default test, a false crash on a node that did right).
    async fn lift(&mut self, cluster: &Cluster) -> Result<Vec<(usize, String)>, NemesisError> {
        let faulted = std::mem::take(&mut self.faulted);
        let mut lifted = Ok(());
        for (node, _) in &faulted {
            if let Err(error) = cluster.lift_disk_faults(*node) {
                lifted = lifted.and(Err(error));
            }
        }
        tokio::time::sleep(Duration::from_millis(LIFT_GRACE_MS)).await;
        let mut stopped = Vec::new();
        for (node, pid_then) in faulted {
            let running_since = cluster.node_state(node) != NodeState::Killed && cluster.pid(node) == pid_then;
            cluster.expect_no_disk_exit(node);
            if !running_since {
                stopped.push((node, last_line(&cluster.node_env(node).log_path)));
            }
        }
        lifted?;
        Ok(stopped)
    }
}

impl Nemesis for DiskNemesis {
    fn handles(&self) -> Vec<FaultFamily> {
        vec![FaultFamily::Disk]
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(choose_then_apply(self, fault, cluster))
    }

    fn choose(&mut self, fault: Fault, nodes: usize, _leader: Option<usize>) -> Option<Targets> {
        let Fault::Disk(mode) = fault else { return None };
        Some(Targets::Nodes(match mode {
            DiskMode::FsyncEioMajority => choose_nodes(&mut self.rng, nodes, kill_count(KillTarget::Majority, nodes)),
            _ => vec![self.rng.random_range(0..nodes)],
        }))
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let (Fault::Disk(mode), Targets::Nodes(targets)) = (fault, targets) else {
                return Err(NemesisError::Unhandled(fault));
            };
            if mode == DiskMode::TornWrite {
                let &[node] = targets.as_slice() else { return Err(NemesisError::Unhandled(fault)) };
                return self.tear(node, cluster).await;
            }
            let faults = self.faults(mode);
            for node in &targets {
                // Remember before acting, so a half-applied fault is still lifted.
                self.faulted.push((*node, cluster.pid(*node)));
                cluster.set_disk_faults(*node, &faults)?;
            }
            Ok(json!({ "disk": faults.control_line().trim(), "nodes": node_names(&targets) }))
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            if self.faulted.is_empty() && self.cut.is_empty() {
                return Ok(Effect::Null);
            }
            let lifted: Vec<String> = self.faulted.iter().map(|(node, _)| node_name(*node)).collect();
            let stopped = self.lift(cluster).await?;
            // A node that stopped on a disk error comes back as after a
            // reboot: its volume remounted, so it reads only what reached
            // the disk, not pages whose fsync failed (still in the old
            // daemon's memory, as in a kernel's page cache).
            for (node, _) in &stopped {
                cluster.power_cut(*node).await?;
            }
            let mut restart: Vec<usize> = std::mem::take(&mut self.cut);
            restart.extend(stopped.iter().map(|(node, _)| *node));
            cluster.restart_all(&restart).await?;
            let remounted: Vec<String> = stopped.iter().map(|(node, _)| node_name(*node)).collect();
            let stopped: Vec<_> = stopped.iter().map(|(node, line)| json!({ "node": node_name(*node), "log": line })).collect();
            Ok(json!({
                "disk-healed": lifted,
                "stopped-on-disk-error": stopped,
                "restarted": node_names(&restart),
                "remounted": remounted,
            }))
        })
    }
}
