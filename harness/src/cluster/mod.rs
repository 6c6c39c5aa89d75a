//! The cluster supervisor: runs each node of the system under test as a real
//! process behind the fault proxy, and kills, restarts, pauses, resumes and
//! wipes it on demand.
//!
//! Every child is forked from one dedicated long-lived thread
//! (`supervisor`), in its own process group, with `PR_SET_PDEATHSIG(SIGKILL)`,
//! so no child outlives the harness however it exits, and that thread reaps
//! every child. What a system needs to run is one `Db` implementation
//! (`faultline_node::FaultlineNodeDb` is the embedded default).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::proxy::{FaultProxy, ProxyConfig};

mod db;
mod error;
mod faultline_node;

pub use db::{BoxFuture, Db, NodeEnv, NodeLaunch, PeerRouting};
pub use error::ClusterError;
pub use faultline_node::{find_node_binary, FaultlineNodeDb};

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub nodes: usize,
    /// Root of this cluster's files: `node-<i>/data` and `node-<i>.log`.
    pub dir: PathBuf,
    /// Bound on waiting for one node to answer its readiness probe.
    pub ready_timeout_ms: u64,
    /// Drives node seeds and the proxy's jitter.
    pub seed: u64,
    pub proxy: ProxyConfig,
}

impl ClusterConfig {
    pub fn new(nodes: usize, dir: PathBuf, seed: u64) -> Self {
        ClusterConfig {
            nodes,
            dir,
            ready_timeout_ms: 10_000,
            seed,
            proxy: ProxyConfig { seed, ..ProxyConfig::default() },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    Killed,
}

/// A node process that exited without the harness asking for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnexpectedExit {
    pub node: usize,
    pub pid: u32,
    /// Exit code, or None when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A running cluster. Cheap to clone; `shutdown` (or dropping the last
/// clone) kills and reaps every node and closes the proxy.
#[derive(Clone)]
pub struct Cluster {
    _inner: Arc<()>,
}

impl Cluster {
    /// Allocate ports, open the proxy routes (peer and client), start every
    /// node and wait until each is ready (bounded by `ready_timeout_ms`).
    pub async fn start(db: Arc<dyn Db>, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let _ = (db, config);
        todo!()
    }

    pub fn nodes(&self) -> usize {
        todo!()
    }

    /// The proxied client address of `node`: clients must use this one.
    pub fn client_addr(&self, node: usize) -> SocketAddr {
        let _ = node;
        todo!()
    }

    /// What node `node` was launched with (real, unproxied addresses).
    pub fn node_env(&self, node: usize) -> NodeEnv {
        let _ = node;
        todo!()
    }

    pub fn proxy(&self) -> &FaultProxy {
        todo!()
    }

    /// SIGKILL the node's process group and reap it.
    pub async fn kill(&self, node: usize) -> Result<(), ClusterError> {
        let _ = node;
        todo!()
    }

    /// Start a killed node again with the same data dir and wait until it is
    /// ready (bounded). A running node is killed first.
    pub async fn restart(&self, node: usize) -> Result<(), ClusterError> {
        let _ = node;
        todo!()
    }

    /// SIGSTOP the node's process group.
    pub fn pause(&self, node: usize) -> Result<(), ClusterError> {
        let _ = node;
        todo!()
    }

    /// SIGCONT the node's process group.
    pub fn resume(&self, node: usize) -> Result<(), ClusterError> {
        let _ = node;
        todo!()
    }

    /// Delete the node's data (through `Db::wipe`). The node must be killed.
    pub async fn wipe(&self, node: usize) -> Result<(), ClusterError> {
        let _ = node;
        todo!()
    }

    /// The leader as the live nodes report it (best effort).
    pub async fn leader(&self) -> Option<usize> {
        todo!()
    }

    pub fn node_state(&self, node: usize) -> NodeState {
        let _ = node;
        todo!()
    }

    /// Exits nobody asked for (crashes), in the order they were seen.
    pub fn unexpected_exits(&self) -> Vec<UnexpectedExit> {
        todo!()
    }

    pub fn log_paths(&self) -> Vec<PathBuf> {
        todo!()
    }

    /// The patterns that mark an error line in a node log (from the `Db`).
    pub fn log_error_patterns(&self) -> Vec<String> {
        todo!()
    }

    /// Kill and reap every node and close the proxy. Idempotent.
    pub async fn shutdown(&self) {
        todo!()
    }
}

/// On SIGINT or SIGTERM: shut the cluster down, then exit the process with
/// 128 + the signal number. Call once per run, inside the runtime.
pub fn install_signal_cleanup(cluster: &Cluster) -> tokio::task::JoinHandle<()> {
    let _ = cluster;
    todo!()
}
