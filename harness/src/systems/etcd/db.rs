//! `EtcdDb`: an etcd (v3.4+) cluster, one member per node.
//!
//! etcd members share one view of peer URLs (`--initial-cluster`), so peer
//! traffic uses shared proxy routes (the proxy finds the connecting member
//! from the socket table); every member advertises its proxied peer
//! address, and serves clients on its own port, reached through the
//! per-node client route. Members are added (as learners), promoted and
//! removed through etcd's own requests (`db/membership.rs`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{BoxFuture, ClusterError, Db, MemberError, Members, NodeEnv, NodeLaunch, PeerRouting, StateDigest};
use crate::cluster::find_on_path;

use super::http::HttpConnection;
mod membership;

/// How to run etcd.
#[derive(Clone, Debug)]
pub struct EtcdDb {
    pub binary: PathBuf,
    pub cluster_token: String,
    /// etcd's `--election-timeout` (its default is 1000 ms).
    pub election_timeout_ms: u64,
    /// etcd's `--heartbeat-interval` (its default is 100 ms).
    pub heartbeat_interval_ms: u64,
    /// Appended to every launch.
    pub extra_args: Vec<String>,
}

/// Bound on one status or health request, connect included.
const PROBE_TIMEOUT_MS: u64 = 500;

impl EtcdDb {
    pub fn new(binary: PathBuf) -> Self {
        EtcdDb {
            binary,
            cluster_token: "faultline".to_string(),
            election_timeout_ms: 1_000,
            heartbeat_interval_ms: 100,
            extra_args: Vec::new(),
        }
    }

    /// `etcd` on the PATH (Debian's etcd-server puts it in /usr/bin).
    pub fn find_binary() -> Result<PathBuf, ClusterError> {
        find_on_path("etcd")
    }
}

/// Member `node`'s name.
pub(super) fn member_name(node: usize) -> String {
    format!("n{node}")
}

/// How a member starts: its `--initial-cluster` (`n0=http://a,...`), the
/// peer address it advertises, and its `--initial-cluster-state`.
#[derive(Debug, PartialEq, Eq)]
struct InitialCluster {
    members: String,
    advertised: SocketAddr,
    state: &'static str,
}

/// A node the cluster started with bootstraps a new cluster with the
/// other initial members; a node added later joins the members it was
/// added to (itself included), which already run. Peer URLs are the
/// shared proxied addresses of `env.peer_dial`, which holds every slot.
fn initial_cluster(node: usize, env: &NodeEnv) -> Result<InitialCluster, ClusterError> {
    let (members, state) = match &env.joining {
        Some(members) => (members, "existing"),
        None => (&env.initial_members, "new"),
    };
    if !members.contains(&node) {
        return Err(ClusterError::Config(format!("etcd node {node} is not among the members it starts with, {members:?}")));
    }
    let address = |member: usize| {
        env.peer_dial.iter().find(|(peer, _)| *peer == member).map(|(_, addr)| *addr).ok_or_else(|| {
            ClusterError::Config(format!("etcd node {node}: shared peer routing gave no address for node {member}"))
        })
    };
    let advertised = address(node)?;
    let urls = members
        .iter()
        .map(|member| Ok(format!("{}=http://{}", member_name(*member), address(*member)?)))
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(InitialCluster { members: urls.join(","), advertised, state })
}

impl Db for EtcdDb {
    fn name(&self) -> &str {
        "etcd"
    }

    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::Shared
    }

    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let cluster = initial_cluster(node, env)?;
        let mut args = vec![
            format!("--name={}", member_name(node)),
            format!("--data-dir={}", env.data_dir.display()),
            format!("--listen-client-urls=http://{}", env.client_listen),
            format!("--advertise-client-urls=http://{}", env.client_listen),
            format!("--listen-peer-urls=http://{}", env.peer_listen),
            format!("--initial-advertise-peer-urls=http://{}", cluster.advertised),
            format!("--initial-cluster={}", cluster.members),
            format!("--initial-cluster-state={}", cluster.state),
            format!("--initial-cluster-token={}", self.cluster_token),
            format!("--election-timeout={}", self.election_timeout_ms),
            format!("--heartbeat-interval={}", self.heartbeat_interval_ms),
            "--logger=zap".to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        Ok(NodeLaunch { program: self.binary.clone(), args, env: Vec::new(), files: Vec::new() })
    }

    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        crate::cluster::clear_dir(&env.data_dir)
    }

    fn log_error_patterns(&self) -> Vec<String> {
        vec!["\"level\":\"panic\"".to_string(), "\"level\":\"fatal\"".to_string(), "panic:".to_string()]
    }

    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let reply = probe(env.client_listen, "/health", None).await;
            // etcd reports health "true" once the member sees a leader.
            reply.is_some_and(|reply| reply["health"] == Value::String("true".into()))
        })
    }

    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move { membership::leader_node(&membership::survey(envs, false).await) })
    }

    /// A hash of every key the member holds (key, value, mod_revision),
    /// read from the member alone (a serializable range), at the revision
    /// its answer names. etcd 3.4's gateway has no `hashkv`, and
    /// `maintenance/hash` covers the whole backend, whose meta bucket may
    /// differ between members at one revision.
    fn digest<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(async move {
            let everything = format!(r#"{{"key":"AA==","range_end":"AA==","serializable":true,"limit":{DIGEST_KEYS_MAX}}}"#);
            let reply = probe(env.client_listen, "/v3/kv/range", Some(everything.as_bytes())).await?;
            if reply["more"].as_bool() == Some(true) {
                return None;
            }
            let revision = reply["header"]["revision"].as_str().and_then(|r| r.parse().ok());
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for kv in reply["kvs"].as_array().into_iter().flatten() {
                for field in ["key", "value", "mod_revision"] {
                    std::hash::Hash::hash(kv[field].as_str().unwrap_or(""), &mut hasher);
                }
            }
            Some(StateDigest { position: revision, digest: format!("{:016x}", std::hash::Hasher::finish(&hasher)) })
        })
    }

    fn supports_membership(&self) -> bool {
        true
    }

    fn add_member<'a>(&'a self, node: usize, env: &'a NodeEnv, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::add(node, env, members))
    }

    fn promote_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::promote(node, members))
    }

    fn remove_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::remove(node, members))
    }

    fn transfer_leader<'a>(&'a self, to: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::transfer(to, members))
    }

    fn members<'a>(&'a self, members: &'a [NodeEnv]) -> BoxFuture<'a, Option<Members>> {
        Box::pin(membership::reported(members))
    }
}

/// Keys one digest covers at most; a member holding more reports none.
const DIGEST_KEYS_MAX: u64 = 100_000;

/// One bounded gateway request straight to a member (not proxied).
pub(super) async fn probe(addr: SocketAddr, path: &str, body: Option<&[u8]>) -> Option<Value> {
    let exchange = async {
        let mut connection = HttpConnection::new(addr, PROBE_TIMEOUT_MS);
        let response = connection.request(path, body).await.ok()?;
        serde_json::from_slice::<Value>(&response.body).ok()
    };
    tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node `node` of a cluster started with nodes 0..3 and one spare
    /// slot, 3: shared routing lists every slot.
    fn env(node: usize) -> NodeEnv {
        NodeEnv {
            node,
            data_dir: "/tmp/d".into(),
            log_path: "/tmp/l".into(),
            client_listen: "127.0.0.1:7001".parse().unwrap(),
            peer_listen: "127.0.0.1:8001".parse().unwrap(),
            peer_dial: (0..4).map(|peer| (peer, format!("127.0.0.1:900{peer}").parse().unwrap())).collect(),
            client_peer_dial: Vec::new(),
            named_peers: Vec::new(),
            seed: 1,
            initial_members: vec![0, 1, 2],
            joining: None,
        }
    }

    fn arg<'a>(launch: &'a NodeLaunch, flag: &str) -> Option<&'a str> {
        launch.args.iter().find_map(|arg| arg.strip_prefix(flag)?.strip_prefix('='))
    }

    #[test]
    fn an_initial_member_bootstraps_with_the_initial_members_only() {
        let launch = EtcdDb::new("/usr/bin/etcd".into()).launch(1, &env(1)).unwrap();
        assert_eq!(arg(&launch, "--initial-advertise-peer-urls"), Some("http://127.0.0.1:9001"));
        assert_eq!(
            arg(&launch, "--initial-cluster"),
            Some("n0=http://127.0.0.1:9000,n1=http://127.0.0.1:9001,n2=http://127.0.0.1:9002"),
            "the spare slot 3 is no bootstrap member"
        );
        assert_eq!(arg(&launch, "--initial-cluster-state"), Some("new"));
        assert_eq!(arg(&launch, "--listen-peer-urls"), Some("http://127.0.0.1:8001"));
        assert_eq!(arg(&launch, "--name"), Some("n1"));
    }

    #[test]
    fn a_joining_node_names_the_members_it_joins_and_existing_state() {
        let mut joining = env(3);
        // Node 0 was removed before 3 joined.
        joining.joining = Some(vec![1, 2, 3]);
        let launch = EtcdDb::new("/usr/bin/etcd".into()).launch(3, &joining).unwrap();
        assert_eq!(arg(&launch, "--name"), Some("n3"));
        assert_eq!(arg(&launch, "--initial-advertise-peer-urls"), Some("http://127.0.0.1:9003"));
        assert_eq!(
            arg(&launch, "--initial-cluster"),
            Some("n1=http://127.0.0.1:9001,n2=http://127.0.0.1:9002,n3=http://127.0.0.1:9003")
        );
        assert_eq!(arg(&launch, "--initial-cluster-state"), Some("existing"));
    }

    #[test]
    fn a_node_outside_the_members_it_starts_with_is_a_config_error() {
        let db = EtcdDb::new("/x".into());
        assert!(matches!(db.launch(3, &env(3)), Err(ClusterError::Config(_))), "a spare is no initial member");
        let mut joining = env(3);
        joining.joining = Some(vec![0, 1, 2]);
        assert!(matches!(db.launch(3, &joining), Err(ClusterError::Config(_))));
    }

    #[test]
    fn launch_without_its_own_route_is_a_config_error() {
        let mut partial = env(1);
        partial.peer_dial.retain(|(peer, _)| *peer != 1);
        assert!(matches!(EtcdDb::new("/x".into()).launch(1, &partial), Err(ClusterError::Config(_))));
        let mut joining = env(3);
        joining.joining = Some(vec![0, 3]);
        joining.peer_dial.retain(|(peer, _)| *peer != 0);
        assert!(matches!(EtcdDb::new("/x".into()).launch(3, &joining), Err(ClusterError::Config(_))));
    }
}
