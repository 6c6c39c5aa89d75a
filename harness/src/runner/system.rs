//! The system under test of a plan: which `Db` runs its nodes and which
//! client protocol its clients speak.
use std::sync::Arc;

use crate::client::{ClientProtocol, ExternalCommand};
use crate::cluster::etcd::EtcdDb;
use crate::cluster::redis::RedisSentinelDb;
use crate::cluster::{find_node_binary, Db, FaultlineNodeDb};
use crate::spec::{System, TestPlan};

use super::RunError;

/// The plan's `Db`, with its binaries found and its timings applied.
pub fn db(plan: &TestPlan) -> Result<Arc<dyn Db>, RunError> {
    let db: Arc<dyn Db> = match &plan.system {
        System::FaultlineNode => {
            let binary = match &plan.node_binary {
                Some(binary) => binary.clone(),
                None => find_node_binary().map_err(|error| RunError::NodeBinary(error.to_string()))?,
            };
            let mut db = FaultlineNodeDb::new(binary);
            db.election_timeout_ms = plan.election_timeout_ms;
            db.heartbeat_interval_ms = plan.heartbeat_interval_ms;
            db.extra_args = plan.node_args.clone();
            Arc::new(db)
        }
        System::Etcd => {
            let binary = match &plan.node_binary {
                Some(binary) => binary.clone(),
                None => EtcdDb::find_binary()?,
            };
            let mut db = EtcdDb::new(binary);
            db.election_timeout_ms = plan.election_timeout_ms.unwrap_or(db.election_timeout_ms);
            db.heartbeat_interval_ms = plan.heartbeat_interval_ms.unwrap_or(db.heartbeat_interval_ms);
            db.extra_args = plan.node_args.clone();
            Arc::new(db)
        }
        System::RedisSentinel => {
            let mut db = RedisSentinelDb::from_path()?;
            // Sentinel's failure detection plays the election timeout.
            db.down_after_ms = plan.election_timeout_ms.unwrap_or(db.down_after_ms);
            db.failover_timeout_ms = db.failover_timeout_ms.max(3 * db.down_after_ms);
            Arc::new(db)
        }
        System::Generic(generic) => Arc::new(generic.db(None)),
    };
    Ok(db)
}

pub fn client_protocol(system: &System) -> ClientProtocol {
    match system {
        System::FaultlineNode => ClientProtocol::FaultlineNode,
        System::Etcd => ClientProtocol::Etcd,
        System::RedisSentinel => ClientProtocol::RedisSentinel,
        System::Generic(generic) => match (generic.client.as_str(), &generic.client_command) {
            ("etcd", _) => ClientProtocol::Etcd,
            ("redis-sentinel", _) => ClientProtocol::RedisSentinel,
            ("external", Some(command)) => {
                ClientProtocol::External(Arc::new(ExternalCommand { command: command.clone(), dir: None }))
            }
            // Validated: anything else is faultline-node.
            _ => ClientProtocol::FaultlineNode,
        },
    }
}
