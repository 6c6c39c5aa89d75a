//! Clients: how one Jepsen process talks to the system under test.
//!
//! A [`Client`] is one process's connection to the cluster: it performs one
//! operation at a time and says how it ended, in history terms. Each system
//! brings its own (in `systems/<system>/client.rs`); the runner only sees
//! `Box<dyn Client>`.
use std::net::SocketAddr;
use std::sync::Arc;

use faultline_workloads::{Invocation, WorkloadKind};

use crate::cluster::BoxFuture;

/// What every client of a run is given.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The proxied client address of each node, by index: clients must
    /// use these, never the nodes' real addresses.
    pub addrs: Vec<SocketAddr>,
    /// The workload whose operations the client maps onto the system.
    pub kind: WorkloadKind,
    /// The workload of the transactions (`f: "txn"`) mixed into `kind`
    /// (`workload.transactions`), if any: see [`ClientConfig::kind_of`].
    pub transactions: Option<WorkloadKind>,
    /// An operation without an answer by then is `info`.
    pub op_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Leader redirects followed within one operation.
    pub redirects_max: u32,
}

impl ClientConfig {
    /// The workload an operation belongs to, which says how to map it and
    /// read its answer: a transaction mixed into a single-key workload is
    /// the share's (a list-append read is a list), anything else `kind`'s.
    pub fn kind_of(&self, invocation: &Invocation) -> WorkloadKind {
        match self.transactions {
            Some(kind) if invocation.f == faultline_checkers::TXN_F => kind,
            _ => self.kind,
        }
    }
}

/// One Jepsen process's connection to the cluster.
pub trait Client: Send {
    /// The process number the next operation is recorded under.
    fn process(&self) -> u64;
    /// Continue as a fresh process (after an `info`, whose outcome may
    /// still change the system later): drop connections and state tied to
    /// the old process.
    fn become_process(&mut self, process: u64);
    /// Perform one operation, bounded by `op_timeout_ms`.
    fn invoke<'a>(&'a mut self, invocation: &'a Invocation) -> BoxFuture<'a, Completion>;
}

/// Builds process `process`'s client.
pub type ClientFactory = Arc<dyn Fn(Arc<ClientConfig>, u64) -> Box<dyn Client> + Send + Sync>;

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
