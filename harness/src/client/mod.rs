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

pub use node::{NodeClient, NodeClientConfig};

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
