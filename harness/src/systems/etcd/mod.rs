//! etcd (v3.4+, the Debian package `etcd-server`), one member per node,
//! driven through its v3 HTTP/JSON gateway, which also adds (as learners),
//! promotes and removes members.
//!
//! Fields of the `cluster` section: `node_binary` (the etcd binary; found
//! on the PATH when absent), `election_timeout` and `heartbeat_interval`
//! (etcd's own flags), `node_args`.
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientConfig, ClientFactory};
use crate::cluster::{ClusterError, Db};
use crate::fields::SpecError;

use super::{read_options, timings, Capabilities, Configured, Protocol, Protocols, Registration, System};

mod client;
mod db;
mod http;

pub use client::EtcdClient;
pub use db::EtcdDb;

pub const REGISTRATION: Registration = Registration {
    name: "etcd",
    about: "etcd 3.4+ (Debian: etcd-server), one member per node",
    configure,
    protocol: Some(Protocol { clients, transactions: true }),
};

/// The fields this system reads from the `cluster` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The etcd binary; `etcd` on the PATH when absent.
    pub node_binary: Option<PathBuf>,
    /// etcd's `--election-timeout` (its default: 1s).
    pub election_timeout: Option<String>,
    /// etcd's `--heartbeat-interval` (its default: 100ms).
    pub heartbeat_interval: Option<String>,
    /// Extra arguments for every member.
    pub node_args: Vec<String>,
}

/// etcd, configured.
#[derive(Debug, Clone)]
pub struct Etcd {
    pub binary: Option<PathBuf>,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub args: Vec<String>,
}

fn configure(options: &serde_json::Map<String, serde_json::Value>, _: Protocols<'_>) -> Result<Configured, SpecError> {
    let options: Options = read_options(REGISTRATION.name, options)?;
    let (election_timeout_ms, heartbeat_interval_ms) = timings(&options.election_timeout, &options.heartbeat_interval)?;
    let system = Etcd {
        binary: options.node_binary.clone(),
        election_timeout_ms,
        heartbeat_interval_ms,
        args: options.node_args.clone(),
    };
    Ok(Configured::new(Arc::new(system), &options))
}

impl System for Etcd {
    fn name(&self) -> &str {
        REGISTRATION.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { leader: true, digest: true, membership: true, transactions: true }
    }

    fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
        let binary = match &self.binary {
            Some(binary) => binary.clone(),
            None => EtcdDb::find_binary()?,
        };
        let mut db = EtcdDb::new(binary);
        db.election_timeout_ms = self.election_timeout_ms.unwrap_or(db.election_timeout_ms);
        db.heartbeat_interval_ms = self.heartbeat_interval_ms.unwrap_or(db.heartbeat_interval_ms);
        db.extra_args = self.args.clone();
        Ok(Arc::new(db))
    }

    fn clients(&self) -> ClientFactory {
        clients()
    }
}

fn clients() -> ClientFactory {
    Arc::new(|config: Arc<ClientConfig>, process| Box::new(EtcdClient::new(config, process)) as Box<dyn Client>)
}
