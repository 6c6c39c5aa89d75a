//! faultline-node, the embedded system under test (`cluster-node/`), run
//! as an external program like any other system: the harness only speaks
//! its wire protocol (docs/node-protocol.md) and passes its flags.
//!
//! Fields of the `cluster` section: `node_binary`, `election_timeout`,
//! `heartbeat_interval`, `node_args`, `mode`, `bugs` (the planted bugs,
//! cluster-node/README.md) and `snapshot_entries`.
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientConfig, ClientFactory};
use crate::cluster::{ClusterError, Db};
use crate::fields::SpecError;

use super::{read_options, timings, Capabilities, Configured, Protocol, Protocols, Registration, System};

mod bank;
mod client;
pub mod codec;
mod db;
pub mod flags;

pub use client::NodeClient;
pub use db::{find_node_binary, FaultlineNodeDb};

pub const REGISTRATION: Registration = Registration {
    name: "faultline-node",
    about: "the embedded Raft key-value node (cluster-node/), with its weaker modes and planted bugs",
    configure,
    protocol: Some(Protocol { clients, transactions: true }),
};

/// Applied entries between snapshots in a test: low enough that a 30 s
/// test snapshots, compacts and sends snapshots to followers that fell
/// behind (about 3,000 writes at the default rate), where the node's own
/// default (10,000) would never reach that code in a test.
const SNAPSHOT_ENTRIES_DEFAULT: u64 = 1_000;

/// The fields this system reads from the `cluster` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Path of the node binary; found next to `faultline` when absent.
    pub node_binary: Option<PathBuf>,
    pub election_timeout: Option<String>,
    /// Must be below `election_timeout`.
    pub heartbeat_interval: Option<String>,
    /// Extra arguments for every node launch.
    pub node_args: Vec<String>,
    /// Replication mode: `raft` (default), `sync`, `semi-sync`, `async`.
    pub mode: Option<String>,
    /// Planted bugs to switch on.
    pub bugs: Vec<String>,
    /// `--snapshot-entries`; null: the node's own default.
    pub snapshot_entries: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_binary: None,
            election_timeout: None,
            heartbeat_interval: None,
            node_args: Vec::new(),
            mode: None,
            bugs: Vec::new(),
            snapshot_entries: Some(SNAPSHOT_ENTRIES_DEFAULT),
        }
    }
}

/// faultline-node, configured.
#[derive(Debug, Clone)]
pub struct FaultlineNode {
    pub binary: Option<PathBuf>,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    /// `--mode`, `--bugs`, then `node_args`.
    pub args: Vec<String>,
}

fn configure(options: &serde_json::Map<String, serde_json::Value>, _: Protocols<'_>) -> Result<Configured, SpecError> {
    let options: Options = read_options(REGISTRATION.name, options)?;
    let system = FaultlineNode::from_options(&options)?;
    Ok(Configured::new(Arc::new(system), &options))
}

impl FaultlineNode {
    pub fn from_options(options: &Options) -> Result<FaultlineNode, SpecError> {
        let (election_timeout_ms, heartbeat_interval_ms) = timings(&options.election_timeout, &options.heartbeat_interval)?;
        let mut args = Vec::new();
        if let Some(mode) = &options.mode {
            flags::check_mode(mode).map_err(|message| SpecError::value("cluster.mode", message))?;
            args.extend(["--mode".to_string(), mode.trim().to_string()]);
        }
        if !options.bugs.is_empty() {
            flags::check_bugs(&options.bugs).map_err(|message| SpecError::value("cluster.bugs", message))?;
            args.extend(["--bugs".to_string(), options.bugs.join(",")]);
        }
        if let Some(entries) = options.snapshot_entries {
            if entries == 0 {
                return Err(SpecError::value("cluster.snapshot_entries", "must be positive (null: the node's own default)"));
            }
            // A flag given in node_args wins (the node refuses it twice).
            if !options.node_args.iter().any(|arg| arg.starts_with("--snapshot-entries")) {
                args.extend(["--snapshot-entries".to_string(), entries.to_string()]);
            }
        }
        args.extend(options.node_args.iter().cloned());
        Ok(FaultlineNode { binary: options.node_binary.clone(), election_timeout_ms, heartbeat_interval_ms, args })
    }
}

impl System for FaultlineNode {
    fn name(&self) -> &str {
        REGISTRATION.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { leader: true, digest: true, membership: true, transactions: true }
    }

    fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
        let binary = match &self.binary {
            Some(binary) => binary.clone(),
            None => find_node_binary()?,
        };
        let mut db = FaultlineNodeDb::new(binary);
        db.election_timeout_ms = self.election_timeout_ms;
        db.heartbeat_interval_ms = self.heartbeat_interval_ms;
        db.extra_args = self.args.clone();
        Ok(Arc::new(db))
    }

    fn clients(&self) -> ClientFactory {
        clients()
    }
}

fn clients() -> ClientFactory {
    Arc::new(|config: Arc<ClientConfig>, process| Box::new(NodeClient::new(config, process)) as Box<dyn Client>)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_flags_reach_the_launch() {
        let options = super::Options {
            mode: Some("async".into()),
            bugs: vec!["stale-read".into(), "no-fsync".into()],
            node_args: vec!["--x".into()],
            ..super::Options::default()
        };
        let node = super::FaultlineNode::from_options(&options).unwrap();
        assert_eq!(node.args, ["--mode", "async", "--bugs", "stale-read,no-fsync", "--snapshot-entries", "1000", "--x"]);
        let own = super::Options { node_args: vec!["--snapshot-entries=50".into()], ..super::Options::default() };
        assert_eq!(super::FaultlineNode::from_options(&own).unwrap().args, ["--snapshot-entries=50"], "node_args wins");
        let none = super::Options { snapshot_entries: None, ..super::Options::default() };
        assert!(super::FaultlineNode::from_options(&none).unwrap().args.is_empty(), "null: the node's default");
        let zero = super::Options { snapshot_entries: Some(0), ..super::Options::default() };
        assert!(super::FaultlineNode::from_options(&zero).unwrap_err().to_string().contains("cluster.snapshot_entries"));
    }
}
