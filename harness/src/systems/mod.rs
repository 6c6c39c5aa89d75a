//! Systems under test. A [`System`] is one configured system: it read and
//! checked its own fields of the spec's `cluster` section, it builds the
//! [`Db`] that runs its nodes and the clients that talk to them, and it
//! declares what it can do ([`Capabilities`]).
//!
//! Each system lives in one folder here (`faultline_node`, `etcd`,
//! `redis_sentinel`, `generic`): its options, its `Db`, its client and its
//! wire codec. [`registry`] is the one list that names them. Nothing else
//! in the harness knows which system it is talking to.
//!
//! A Rust user brings a system of their own by implementing [`System`] and
//! putting it in a plan (see the crate docs); the registry is only for
//! systems a spec file can name.
use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::ClientFactory;
use crate::cluster::{ClusterError, Db};
use crate::fields::{optional_duration, SpecError};

pub mod etcd;
pub mod faultline_node;
pub mod generic;
pub mod redis_sentinel;
pub mod registry;
pub mod text_values;

/// What a system can do beyond running nodes and serving clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `Db::leader` names the leader: the run waits for one before it
    /// starts, leader-targeted faults hit it (else a seeded random node),
    /// and the scripted Raft scenarios (revote, figure-8) can run.
    pub leader: bool,
    /// `Db::digest` reports a digest of each node's applied state: the
    /// convergence check compares them once the cluster has settled.
    pub digest: bool,
    /// `Db::add_member`, `promote_member`, `remove_member` and `members`
    /// work: the `membership` fault family can run.
    pub membership: bool,
    /// Its client runs transactions (`f: "txn"`, a list of
    /// micro-operations applied atomically): the transactional workloads
    /// (list-append) can run.
    pub transactions: bool,
}

/// One system under test, configured.
pub trait System: Send + Sync + Debug {
    /// The name in `cluster.system`, results and reports.
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// The `Db` that runs this system's nodes, with its programs found on
    /// this machine; a missing program is an error that says what to install.
    fn db(&self) -> Result<Arc<dyn Db>, ClusterError>;
    /// Builds the client of one Jepsen process.
    fn clients(&self) -> ClientFactory;
}

/// The client protocols the registered systems lend, by system name: what
/// a `generic` system may borrow with `client: <name>`. The registry hands
/// it to every system it configures.
#[derive(Debug, Clone, Copy)]
pub struct Protocols<'a> {
    pub lent: &'a [Lender],
}

/// A system that lends its client protocol: its name, and the protocol.
pub type Lender = (&'static str, Protocol);

/// A client protocol a system lends.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    pub clients: fn() -> ClientFactory,
    /// The clients run transactions (as `Capabilities::transactions`).
    pub transactions: bool,
}

impl Protocols<'_> {
    pub fn names(&self) -> Vec<&'static str> {
        self.lent.iter().map(|(name, _)| *name).collect()
    }

    pub fn get(&self, name: &str) -> Option<Protocol> {
        self.lent.iter().find(|(lender, _)| *lender == name).map(|(_, protocol)| *protocol)
    }
}

/// How a spec reaches one system.
pub struct Registration {
    /// The name in `cluster.system`.
    pub name: &'static str,
    /// One line for `--help` and errors.
    pub about: &'static str,
    /// Reads and checks the system's own fields of the `cluster` section.
    pub configure: fn(&serde_json::Map<String, serde_json::Value>, Protocols<'_>) -> Result<Configured, SpecError>,
    /// The system's client on its own, which `generic` systems may borrow
    /// (`client: etcd`); None: it has none to lend.
    pub protocol: Option<Protocol>,
}

/// A system as the registry hands it over: the system, and its fields as
/// it read them (defaults filled in) for the resolved `spec.yaml`.
pub struct Configured {
    pub system: Arc<dyn System>,
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl Configured {
    /// `options` written back as the fields of the resolved spec.
    pub fn new<O: Serialize>(system: Arc<dyn System>, options: &O) -> Configured {
        Configured { system, options: fields_of(options) }
    }
}

/// A system's options as fields of the `cluster` section.
pub fn fields_of<O: Serialize>(options: &O) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(options) {
        Ok(serde_json::Value::Object(map)) => map,
        // Options are plain structs: they always serialize to a map.
        _ => serde_json::Map::new(),
    }
}

/// Reads a system's fields from the `cluster` section into its own options
/// type (which should refuse unknown fields); errors name the field.
pub fn read_options<O: DeserializeOwned>(
    system: &str,
    options: &serde_json::Map<String, serde_json::Value>,
) -> Result<O, SpecError> {
    let value = serde_json::Value::Object(options.clone());
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        match path.as_str() {
            "." | "" => SpecError::value("cluster", format!("{inner} (system {system})")),
            field => SpecError::value(&format!("cluster.{field}"), format!("{inner} (system {system})")),
        }
    })
}

/// `cluster.election_timeout` and `cluster.heartbeat_interval` of a system
/// that takes both, in milliseconds; the heartbeat must be the shorter.
pub(crate) fn timings(election: &Option<String>, heartbeat: &Option<String>) -> Result<(Option<u64>, Option<u64>), SpecError> {
    let election_ms = optional_duration("cluster.election_timeout", election)?;
    let heartbeat_ms = optional_duration("cluster.heartbeat_interval", heartbeat)?;
    match (heartbeat_ms, election_ms) {
        (Some(heartbeat), Some(election)) if heartbeat >= election => Err(SpecError::Combination(format!(
            "cluster.heartbeat_interval ({heartbeat} ms) must be below cluster.election_timeout ({election} ms)"
        ))),
        _ => Ok((election_ms, heartbeat_ms)),
    }
}
