//! Clients: how one Jepsen process talks to the system under test.
//!
//! `codec` maps workload operations onto faultline-node requests and back
//! (pure); `node` is the async TCP client that follows leader hints under
//! a per-operation deadline.
pub mod codec;
pub mod etcd;
pub mod external;
pub mod http;
pub mod node;
pub mod redis;
pub mod resp;

pub use external::ExternalCommand;
pub use node::{NodeClient, NodeClientConfig};

use std::sync::Arc;

use faultline_workloads::Invocation;

/// Which client protocol a run speaks.
#[derive(Debug, Clone)]
pub enum ClientProtocol {
    FaultlineNode,
    Etcd,
    RedisSentinel,
    External(Arc<ExternalCommand>),
}

/// A client of any protocol, as the runner drives it.
pub enum AnyClient {
    Node(NodeClient),
    Etcd(etcd::EtcdClient),
    Redis(redis::RedisClient),
    External(external::ExternalClient),
}

impl AnyClient {
    pub fn new(protocol: &ClientProtocol, config: Arc<NodeClientConfig>, process: u64) -> Self {
        match protocol {
            ClientProtocol::FaultlineNode => AnyClient::Node(NodeClient::new(config, process)),
            ClientProtocol::Etcd => AnyClient::Etcd(etcd::EtcdClient::new(config, process)),
            ClientProtocol::RedisSentinel => AnyClient::Redis(redis::RedisClient::new(config, process)),
            ClientProtocol::External(command) => {
                AnyClient::External(external::ExternalClient::new(config, command.clone(), process))
            }
        }
    }

    pub fn process(&self) -> u64 {
        match self {
            AnyClient::Node(client) => client.process(),
            AnyClient::Etcd(client) => client.process(),
            AnyClient::Redis(client) => client.process(),
            AnyClient::External(client) => client.process(),
        }
    }

    /// Continue as a fresh process (after an `info`).
    pub fn become_process(&mut self, process: u64) {
        match self {
            AnyClient::Node(client) => client.become_process(process),
            AnyClient::Etcd(client) => client.become_process(process),
            AnyClient::Redis(client) => client.become_process(process),
            AnyClient::External(client) => client.become_process(process),
        }
    }

    pub async fn invoke(&mut self, invocation: &Invocation) -> Completion {
        match self {
            AnyClient::Node(client) => client.invoke(invocation).await,
            AnyClient::Etcd(client) => client.invoke(invocation).await,
            AnyClient::Redis(client) => client.invoke(invocation).await,
            AnyClient::External(client) => client.invoke(invocation).await,
        }
    }
}

/// How an operation ended, in history terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Took effect; the result value (history form).
    Ok(serde_json::Value),
    /// Definitely did not take effect.
    Fail(String),
    /// May or may not have taken effect.
    Info(String),
}

/// The outcome and which node (0-based) gave it, when one answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub outcome: Outcome,
    pub node: Option<usize>,
}
