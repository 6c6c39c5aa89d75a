//! `EtcdDb`: an etcd (v3.4+) cluster, one member per node.
//!
//! etcd members share one view of peer URLs (`--initial-cluster`), so peer
//! traffic uses shared proxy routes (the proxy finds the connecting member
//! from the socket table); every member advertises its proxied peer
//! address, and serves clients on its own port, reached through the
//! per-node client route.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{BoxFuture, ClusterError, Db, NodeEnv, NodeLaunch, PeerRouting, StateDigest};
use crate::cluster::{find_on_path, majority};

use super::http::HttpConnection;

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
fn member_name(node: usize) -> String {
    format!("n{node}")
}

/// `n0=http://a,n1=http://b,...` from a node's shared peer view, which
/// holds every node including itself.
fn initial_cluster(node: usize, env: &NodeEnv) -> Result<(String, SocketAddr), ClusterError> {
    let own = env.peer_dial.iter().find(|(peer, _)| *peer == node).map(|(_, addr)| *addr).ok_or_else(|| {
        ClusterError::Config(format!("etcd node {node}: shared peer routing gave no address for the node itself"))
    })?;
    let members: Vec<String> =
        env.peer_dial.iter().map(|(peer, addr)| format!("{}=http://{addr}", member_name(*peer))).collect();
    Ok((members.join(","), own))
}

impl Db for EtcdDb {
    fn name(&self) -> &str {
        "etcd"
    }

    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::Shared
    }

    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let (cluster, own_peer) = initial_cluster(node, env)?;
        let mut args = vec![
            format!("--name={}", member_name(node)),
            format!("--data-dir={}", env.data_dir.display()),
            format!("--listen-client-urls=http://{}", env.client_listen),
            format!("--advertise-client-urls=http://{}", env.client_listen),
            format!("--listen-peer-urls=http://{}", env.peer_listen),
            format!("--initial-advertise-peer-urls=http://{own_peer}"),
            format!("--initial-cluster={cluster}"),
            "--initial-cluster-state=new".to_string(),
            format!("--initial-cluster-token={}", self.cluster_token),
            format!("--election-timeout={}", self.election_timeout_ms),
            format!("--heartbeat-interval={}", self.heartbeat_interval_ms),
            "--logger=zap".to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        Ok(NodeLaunch { program: self.binary.clone(), args, env: Vec::new() })
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
        Box::pin(async move {
            let mut members = Vec::new();
            let mut leaders = Vec::new();
            for env in envs {
                let Some(status) = probe(env.client_listen, "/v3/maintenance/status", Some(b"{}")).await else {
                    continue;
                };
                if let Some(member) = status["header"]["member_id"].as_str() {
                    members.push((member.to_string(), env.node));
                }
                if let Some(leader) = status["leader"].as_str() {
                    leaders.push(leader.to_string());
                }
            }
            let leader = majority(&leaders)?;
            members.into_iter().find(|(member, _)| *member == leader).map(|(_, node)| node)
        })
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
}

/// Keys one digest covers at most; a member holding more reports none.
const DIGEST_KEYS_MAX: u64 = 100_000;

/// One bounded gateway request straight to a member (not proxied).
async fn probe(addr: SocketAddr, path: &str, body: Option<&[u8]>) -> Option<Value> {
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

    fn env(node: usize) -> NodeEnv {
        NodeEnv {
            node,
            data_dir: "/tmp/d".into(),
            log_path: "/tmp/l".into(),
            client_listen: "127.0.0.1:7001".parse().unwrap(),
            peer_listen: "127.0.0.1:8001".parse().unwrap(),
            peer_dial: vec![
                (0, "127.0.0.1:9000".parse().unwrap()),
                (1, "127.0.0.1:9001".parse().unwrap()),
                (2, "127.0.0.1:9002".parse().unwrap()),
            ],
            client_peer_dial: Vec::new(),
            named_peers: Vec::new(),
            seed: 1,
        }
    }

    #[test]
    fn launch_advertises_the_shared_proxied_peer_view() {
        let launch = EtcdDb::new("/usr/bin/etcd".into()).launch(1, &env(1)).unwrap();
        let args = launch.args.join(" ");
        assert!(args.contains("--initial-advertise-peer-urls=http://127.0.0.1:9001"), "{args}");
        assert!(
            args.contains("--initial-cluster=n0=http://127.0.0.1:9000,n1=http://127.0.0.1:9001,n2=http://127.0.0.1:9002"),
            "{args}"
        );
        assert!(args.contains("--listen-peer-urls=http://127.0.0.1:8001"), "{args}");
    }

    #[test]
    fn launch_without_its_own_route_is_a_config_error() {
        let mut partial = env(1);
        partial.peer_dial.retain(|(peer, _)| *peer != 1);
        assert!(matches!(EtcdDb::new("/x".into()).launch(1, &partial), Err(ClusterError::Config(_))));
    }
}
