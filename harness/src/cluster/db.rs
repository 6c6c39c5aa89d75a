//! `Db`: how to run one node of a system under test. One implementation per
//! system; the supervisor does the rest.
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use super::ClusterError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How nodes learn their peers' addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRouting {
    /// Each node gets its own view: node i dials a proxy listener per pair
    /// (i → j), so the proxy knows the source from the listener.
    PerPair,
    /// All nodes share one view (one proxy listener per destination); the
    /// proxy finds the source from the kernel socket table.
    Shared,
}

/// Everything one node is launched with.
#[derive(Clone, Debug)]
pub struct NodeEnv {
    /// 0-based index (faultline-node's id is `node + 1`).
    pub node: usize,
    pub data_dir: PathBuf,
    /// Where the node's stdout and stderr go (appended across restarts).
    pub log_path: PathBuf,
    /// The real address the node serves clients on.
    pub client_listen: SocketAddr,
    /// The real address the node serves peers on.
    pub peer_listen: SocketAddr,
    /// For each other node j: the (proxied) address this node dials for j.
    /// With `PeerRouting::Shared` it also holds the node's own entry (the
    /// address it advertises to its peers).
    pub peer_dial: Vec<(usize, SocketAddr)>,
    /// For each node j (itself included), a shared proxy route to j's
    /// client port, attributed like the peer routes: only for a system
    /// whose nodes also reach each other on their client ports
    /// ([`Db::peers_dial_client_ports`]); empty otherwise.
    pub client_peer_dial: Vec<(usize, SocketAddr)>,
    /// The node's further peer ports ([`Db::peer_port_names`]), each
    /// routed through the proxy like the main one, so a partition cuts them
    /// all together.
    pub named_peers: Vec<NamedPeerPort>,
    pub seed: u64,
    /// The nodes the cluster was started with: its bootstrap members.
    pub initial_members: Vec<usize>,
    /// The members it joins, itself included, when the node was added to
    /// a running cluster with an empty data dir ([`Db::add_member`]); None
    /// for a node the cluster started with.
    pub joining: Option<Vec<usize>>,
}

/// One more peer port of a node (an election port beside a replication
/// port, say), named by its system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPeerPort {
    pub name: String,
    /// The real address the node serves it on.
    pub listen: SocketAddr,
    /// For each other node j (and itself, with shared routing): the
    /// proxied address this node dials for j's port of this name.
    pub dial: Vec<(usize, SocketAddr)>,
}

impl NodeEnv {
    /// The node's own proxied address for its main peer port, which it
    /// advertises to its peers: only with shared routing, where every node
    /// dials the same address for it.
    pub fn advertised(&self) -> Option<SocketAddr> {
        self.peer_dial.iter().find(|(peer, _)| *peer == self.node).map(|(_, addr)| *addr)
    }

    /// The further peer port named `name`.
    pub fn named_peer(&self, name: &str) -> Option<&NamedPeerPort> {
        self.named_peers.iter().find(|port| port.name == name)
    }
}

/// A node's digest of its applied state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateDigest {
    /// How far into the log the state goes (applied index, revision,
    /// replication offset), when the system has such a position.
    pub position: Option<u64>,
    pub digest: String,
}

/// Which nodes vote and which only replicate, as the cluster reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Members {
    pub voters: Vec<usize>,
    pub learners: Vec<usize>,
}

/// Why a membership request was not done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// Not now, perhaps later: no leader answered, another change is in
    /// progress, the learner is still catching up.
    #[error("{0}")]
    Retry(String),
    /// Not now: no running member names a leader. Retried for a shorter
    /// time than `Retry`, as an election takes: the faults that may be why
    /// (a killed majority, a partition) stay in force while the nemesis
    /// waits.
    #[error("{0}")]
    NoLeader(String),
    /// Retrying will not help (the system said why).
    #[error("{0}")]
    Refused(String),
    #[error("the system cannot change its membership")]
    Unsupported,
}

/// A program to run, with its arguments and extra environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLaunch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files the node needs, written before each launch where it runs
    /// (this machine, or its host), such as a config file.
    pub files: Vec<NodeFile>,
}

/// A file a node is launched with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFile {
    pub path: PathBuf,
    pub text: String,
    /// Keep a file already there (a system that rewrites its own config
    /// must find its rewrite after a restart).
    pub keep_existing: bool,
}

impl NodeFile {
    /// Write the file on this machine.
    pub fn write_here(&self) -> Result<(), ClusterError> {
        if self.keep_existing && self.path.exists() {
            return Ok(());
        }
        std::fs::write(&self.path, &self.text).map_err(|source| ClusterError::Files { path: self.path.clone(), source })
    }
}

pub trait Db: Send + Sync {
    fn name(&self) -> &str;
    fn peer_routing(&self) -> PeerRouting;
    /// True if nodes also talk to each other on their client ports (Redis
    /// Sentinels do): each node then gets a shared, attributed route to
    /// every client port (`NodeEnv::client_peer_dial`), so partitions cut
    /// that traffic too. Needs `PeerRouting::Shared`.
    fn peers_dial_client_ports(&self) -> bool {
        false
    }
    /// Names of the node's further peer ports, besides the main one (for a
    /// node that talks to its peers on several ports); each gets its own
    /// real port and proxied routes (`NodeEnv::named_peers`).
    fn peer_port_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError>;
    /// Delete the node's state; called with the node killed.
    fn wipe(&self, node: usize, env: &NodeEnv) -> Result<(), ClusterError>;
    /// Substrings that mark an error line in a node log ("panicked at").
    fn log_error_patterns(&self) -> Vec<String>;
    /// One readiness probe through the node's real client address; must
    /// return within a short bound of its own.
    fn is_ready<'a>(&'a self, node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool>;
    /// The leader's index as the nodes report it (best effort).
    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>>;
    /// A digest of the node's applied state, with the position in its log
    /// it covers where the system has one, for the convergence check; one
    /// bounded probe. None: the node did not answer, or the system has no
    /// digest (the default).
    fn digest<'a>(&'a self, _node: usize, _env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(async { None })
    }
    /// The node's wall clock, in milliseconds since the Unix epoch, as the
    /// node itself reads it; one bounded probe. The clock nemesis asks it
    /// once per node to see that a faked offset reaches the node. None:
    /// no answer, or the system has no such probe (the default), and then
    /// clock faults are refused.
    fn clock_ms<'a>(&'a self, _node: usize, _env: &'a NodeEnv) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async { None })
    }
    /// True when `clock_ms` answers (clock faults need it).
    fn has_clock_probe(&self) -> bool {
        false
    }
    /// True if the four membership requests below work (the `membership`
    /// fault family needs them).
    fn supports_membership(&self) -> bool {
        false
    }
    /// Ask the cluster, through its running members `members`, to take in
    /// `node` (whose env is `env`, not started yet, its data dir empty) as
    /// a learner: a member that replicates but does not vote. Done once
    /// the system answered that the change is in effect.
    fn add_member<'a>(&'a self, _node: usize, _env: &'a NodeEnv, _members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Err(MemberError::Unsupported) })
    }
    /// Make the learner `node` a voter; `Retry` while it catches up.
    fn promote_member<'a>(&'a self, _node: usize, _members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Err(MemberError::Unsupported) })
    }
    /// Take `node` out of the cluster; the harness stops it afterwards.
    fn remove_member<'a>(&'a self, _node: usize, _members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Err(MemberError::Unsupported) })
    }
    /// Ask the leader among `members` to hand leadership to the member
    /// `to` (done once the system accepted; the new leader shows in
    /// [`Db::leader`]). Optional even with membership support.
    fn transfer_leader<'a>(&'a self, _to: usize, _members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(async { Err(MemberError::Unsupported) })
    }
    /// The membership as the running members `members` report it (the
    /// answer of a leader, or of most of them); None: no answer.
    fn members<'a>(&'a self, _members: &'a [NodeEnv]) -> BoxFuture<'a, Option<Members>> {
        Box::pin(async { None })
    }
}

/// Empty `dir` but keep it (it may be a mount point); create it if missing.
/// What `Db::wipe` does unless a system needs more.
pub fn clear_dir(dir: &std::path::Path) -> Result<(), ClusterError> {
    let files_error = |source| ClusterError::Files { path: dir.to_path_buf(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(dir).map_err(files_error);
        }
        Err(error) => return Err(files_error(error)),
    };
    for entry in entries {
        let entry = entry.map_err(files_error)?;
        let path = entry.path();
        let removed = match entry.file_type().map_err(files_error)?.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        removed.map_err(|source| ClusterError::Files { path, source })?;
    }
    Ok(())
}

/// The leader more than half of the answers name, if any: how a `Db` turns
/// its nodes' reports into one answer (a node that did not answer is not
/// an answer).
pub fn majority<T: Ord + Clone>(answers: &[T]) -> Option<T> {
    let mut counts = std::collections::BTreeMap::new();
    for answer in answers {
        *counts.entry(answer).or_insert(0usize) += 1;
    }
    let (leader, count) = counts.into_iter().max_by_key(|(_, count)| *count)?;
    (count * 2 > answers.len()).then(|| leader.clone())
}

#[cfg(test)]
mod tests {
    use super::majority;

    #[test]
    fn majority_needs_more_than_half_of_the_answers() {
        assert_eq!(majority(&[1, 1]), Some(1));
        assert_eq!(majority(&[1, 2]), None);
        assert_eq!(majority(&[0, 0, 2]), Some(0));
        assert_eq!(majority::<usize>(&[]), None);
        assert_eq!(majority(&["7".to_string(), "7".to_string(), "9".to_string()]), Some("7".to_string()));
    }
}
