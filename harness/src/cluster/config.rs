//! How to start a cluster, checked before anything starts.
use std::path::PathBuf;

use super::{ClusterError, HostsConfig, VolumeConfig};
use crate::proxy::ProxyConfig;

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The nodes started, the cluster's first members.
    pub nodes: usize,
    /// Slots beyond those, with ports, routes and a data dir but no
    /// process until a membership change adds them (`Cluster::add_member`).
    pub spares: usize,
    /// Root of this cluster's files: `node-<i>/data` and `node-<i>.log`.
    pub dir: PathBuf,
    /// Bound on waiting for one node to answer its readiness probe.
    pub ready_timeout_ms: u64,
    /// Drives node seeds and the proxy's jitter.
    pub seed: u64,
    pub proxy: ProxyConfig,
    /// Serve each data dir from a lazyfs mount, so `power_cut` can drop
    /// unsynced data (None: plain directories).
    pub volumes: Option<VolumeConfig>,
    /// Run node i on host i over SSH, with no proxy (None: every node on
    /// this machine behind the proxy).
    pub hosts: Option<HostsConfig>,
    /// Preload libfaketime into every node, so the clock nemesis can move
    /// its clock (None: real clocks).
    pub clock: Option<ClockConfig>,
}

/// How nodes get a clock the harness can move.
#[derive(Clone, Debug)]
pub struct ClockConfig {
    /// libfaketime's shared object.
    pub library: PathBuf,
    /// Fake the monotonic clock too (libfaketime's default); otherwise only
    /// the wall clock moves.
    pub fake_monotonic: bool,
}

impl ClusterConfig {
    pub fn new(nodes: usize, dir: PathBuf, seed: u64) -> Self {
        ClusterConfig {
            nodes,
            spares: 0,
            dir,
            ready_timeout_ms: 10_000,
            seed,
            proxy: ProxyConfig { seed, ..ProxyConfig::default() },
            volumes: None,
            hosts: None,
            clock: None,
        }
    }
}

/// Largest cluster the supervisor runs.
const NODES_MAX: usize = 64;

pub(super) fn validate(config: &ClusterConfig) -> Result<(), ClusterError> {
    if config.nodes == 0 || config.nodes + config.spares > NODES_MAX {
        return Err(ClusterError::Config(format!(
            "nodes and spares must be in 1..={NODES_MAX} together, not {} + {}",
            config.nodes, config.spares
        )));
    }
    if config.ready_timeout_ms == 0 {
        return Err(ClusterError::Config("ready_timeout_ms must be positive".into()));
    }
    Ok(())
}

