//! `FaultlineNodeDb`: the embedded system under test, `faultline-node`
//! (see docs/node-protocol.md), launched with one proxied peer route per
//! pair.
use std::path::PathBuf;

use super::db::{BoxFuture, Db, NodeEnv, NodeLaunch, PeerRouting};
use super::ClusterError;

/// How to run faultline-node.
#[derive(Clone, Debug)]
pub struct FaultlineNodeDb {
    pub binary: PathBuf,
    pub cluster_id: String,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    /// Appended to every launch (modes, bug switches).
    pub extra_args: Vec<String>,
}

impl FaultlineNodeDb {
    pub fn new(binary: PathBuf) -> Self {
        FaultlineNodeDb {
            binary,
            cluster_id: "faultline".to_string(),
            election_timeout_ms: None,
            heartbeat_interval_ms: None,
            extra_args: Vec::new(),
        }
    }
}

impl Db for FaultlineNodeDb {
    fn name(&self) -> &str {
        "faultline-node"
    }
    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::PerPair
    }
    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let _ = (node, env);
        todo!()
    }
    fn wipe(&self, node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        let _ = (node, env);
        todo!()
    }
    fn log_error_patterns(&self) -> Vec<String> {
        todo!()
    }
    fn is_ready<'a>(&'a self, node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        let _ = (node, env);
        todo!()
    }
    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        let _ = envs;
        todo!()
    }
}

/// The faultline-node binary: `FAULTLINE_NODE_BIN`, else next to the current
/// executable (or its parent, for test binaries in `deps/`), else
/// `target/{release,debug}` of the workspace.
pub fn find_node_binary() -> Result<PathBuf, ClusterError> {
    todo!()
}
