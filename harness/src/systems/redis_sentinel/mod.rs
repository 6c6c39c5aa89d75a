//! Redis with asynchronous replication and Sentinel failover (Debian:
//! `redis-server`, `redis-sentinel`): node i runs one server and one
//! sentinel; node 0 starts as the primary.
//!
//! Fields of the `cluster` section: `election_timeout` (Sentinel's
//! `down-after-milliseconds`, which plays the election timeout's part).
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientConfig, ClientFactory};
use crate::cluster::{ClusterError, Db};
use crate::fields::{optional_duration, SpecError};

use super::{read_options, Capabilities, Configured, Protocol, Protocols, Registration, System};

mod client;
mod db;
mod resp;

pub use client::RedisClient;
pub use db::{RedisSentinelDb, MASTER_NAME};
pub use resp::{Reply, RespConnection};

pub const REGISTRATION: Registration = Registration {
    name: "redis-sentinel",
    about: "Redis + Sentinel (Debian: redis-server, redis-sentinel): asynchronous replication, sentinel failover",
    configure,
    protocol: Some(Protocol { clients, transactions: false }),
};

/// The fields this system reads from the `cluster` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Sentinel's `down-after-milliseconds` (default 1s).
    pub election_timeout: Option<String>,
}

/// Redis + Sentinel, configured.
#[derive(Debug, Clone)]
pub struct RedisSentinel {
    pub down_after_ms: Option<u64>,
}

fn configure(options: &serde_json::Map<String, serde_json::Value>, _: Protocols<'_>) -> Result<Configured, SpecError> {
    let options: Options = read_options(REGISTRATION.name, options)?;
    let down_after_ms = optional_duration("cluster.election_timeout", &options.election_timeout)?;
    Ok(Configured::new(Arc::new(RedisSentinel { down_after_ms }), &options))
}

impl System for RedisSentinel {
    fn name(&self) -> &str {
        REGISTRATION.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { leader: true, digest: true, membership: false, transactions: false }
    }

    fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
        let mut db = RedisSentinelDb::from_path()?;
        db.down_after_ms = self.down_after_ms.unwrap_or(db.down_after_ms);
        db.failover_timeout_ms = db.failover_timeout_ms.max(3 * db.down_after_ms);
        Ok(Arc::new(db))
    }

    fn clients(&self) -> ClientFactory {
        clients()
    }
}

fn clients() -> ClientFactory {
    Arc::new(|config: Arc<ClientConfig>, process| Box::new(RedisClient::new(config, process)) as Box<dyn Client>)
}
