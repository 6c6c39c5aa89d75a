//! `FaultlineNodeDb`: the embedded system under test, `faultline-node`
//! (see docs/node-protocol.md), launched with one proxied peer route per
//! pair.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cluster::{majority, BoxFuture, ClusterError, Db, MemberError, Members, NodeEnv, NodeLaunch, PeerRouting, StateDigest};

mod membership;

/// How to run faultline-node.
#[derive(Clone, Debug)]
pub struct FaultlineNodeDb {
    pub binary: PathBuf,
    pub cluster_id: String,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    /// Appended to every launch (modes, bug switches).
    pub extra_args: Vec<String>,
}

impl FaultlineNodeDb {
    pub fn new(binary: PathBuf) -> Self {
        FaultlineNodeDb {
            binary,
            cluster_id: "faultline".to_string(),
            election_timeout_ms: None,
            heartbeat_interval_ms: None,
            extra_args: Vec::new(),
        }
    }
}

impl Db for FaultlineNodeDb {
    fn name(&self) -> &str {
        "faultline-node"
    }

    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::PerPair
    }

    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let peers: Vec<String> =
            env.peer_dial.iter().map(|(peer, addr)| format!("{}={addr}", peer + 1)).collect();
        let mut args = vec![
            "--id".to_string(),
            (node + 1).to_string(),
            "--data-dir".to_string(),
            env.data_dir.display().to_string(),
            "--client-addr".to_string(),
            env.client_listen.to_string(),
            "--peer-addr".to_string(),
            env.peer_listen.to_string(),
            "--peers".to_string(),
            peers.join(","),
            "--cluster-id".to_string(),
            self.cluster_id.clone(),
            "--seed".to_string(),
            env.seed.to_string(),
        ];
        if let Some(ms) = self.election_timeout_ms {
            args.extend(["--election-timeout-ms".to_string(), ms.to_string()]);
        }
        if let Some(ms) = self.heartbeat_interval_ms {
            args.extend(["--heartbeat-interval-ms".to_string(), ms.to_string()]);
        }
        if let Some(voters) = bootstrap_voters(node, env) {
            let voters: Vec<String> = voters.iter().map(|member| (member + 1).to_string()).collect();
            args.extend(["--voters".to_string(), voters.join(",")]);
        }
        args.extend(self.extra_args.iter().cloned());
        Ok(NodeLaunch { program: self.binary.clone(), args, env: Vec::new(), files: Vec::new() })
    }

    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        crate::cluster::clear_dir(&env.data_dir)
    }

    fn log_error_patterns(&self) -> Vec<String> {
        // A node that sees a peer break Raft's guarantees (two leaders in a
        // term, a leader missing committed entries) logs this and goes on.
        // One that skips a committed command it cannot decode has left the
        // other replicas behind: a correct node never holds one (its WAL
        // and snapshots are checksummed, the proxy alters no bytes), so the
        // line means it applied damage.
        ["panicked at", "FATAL", "raft safety violation", "undecodable committed entry"].map(String::from).to_vec()
    }

    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            status(env.client_listen)
                .await
                .is_some_and(|reply| reply.get("ok") == Some(&serde_json::Value::Bool(true)))
        })
    }

    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move {
            let reports: Vec<usize> = statuses(envs)
                .await
                .iter()
                .filter_map(|status| usize::try_from(status["leader"].as_u64()?).ok()?.checked_sub(1))
                .collect();
            majority(&reports)
        })
    }

    fn digest<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(FaultlineNodeDb::status_digest(env))
    }

    fn clock_ms<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move { status(env.client_listen).await?["value"]["clock_ms"].as_u64() })
    }

    fn has_clock_probe(&self) -> bool {
        true
    }

    fn supports_membership(&self) -> bool {
        true
    }

    fn add_member<'a>(&'a self, node: usize, _env: &'a NodeEnv, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::change("member_add", node, members))
    }

    fn promote_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::change("member_promote", node, members))
    }

    fn remove_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::change("member_remove", node, members))
    }

    fn transfer_leader<'a>(&'a self, to: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(membership::change("transfer_leader", to, members))
    }

    fn members<'a>(&'a self, members: &'a [NodeEnv]) -> BoxFuture<'a, Option<Members>> {
        Box::pin(membership::reported(members))
    }
}

impl FaultlineNodeDb {
    /// The node's `applied` index and the digest of its key-value state,
    /// from its status.
    async fn status_digest(env: &NodeEnv) -> Option<StateDigest> {
        let reply = status(env.client_listen).await?;
        let value = &reply["value"];
        Some(StateDigest { position: value["applied"].as_u64(), digest: value["digest"].as_u64()?.to_string() })
    }
}

/// Bound on one status request, connect included.
const STATUS_TIMEOUT_MS: u64 = 300;
/// Longest status line accepted.
const STATUS_LINE_BYTES_MAX: u64 = 64 * 1024;

/// The node's answer to `{"id":1,"op":"status"}`, if it gives one in time.
pub(super) async fn status(addr: SocketAddr) -> Option<serde_json::Value> {
    ask(addr, "{\"id\":1,\"op\":\"status\"}\n", STATUS_TIMEOUT_MS).await
}

/// The `value` of every node's status that came in time, asked of all
/// at once: a node that does not answer costs one bound, not one per node.
pub(super) async fn statuses(envs: &[NodeEnv]) -> Vec<serde_json::Value> {
    let mut probes = tokio::task::JoinSet::new();
    for env in envs {
        probes.spawn(status(env.client_listen));
    }
    let mut values = Vec::with_capacity(envs.len());
    while let Some(reply) = probes.join_next().await {
        // The status fields sit in the response's `value`.
        values.extend(reply.ok().flatten().map(|mut reply| reply["value"].take()));
    }
    values
}

/// The node's answer to one request line, if it gives one within
/// `timeout_ms`.
pub(super) async fn ask(addr: SocketAddr, line: &str, timeout_ms: u64) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(line.as_bytes()).await.ok()?;
        let mut answer = String::new();
        BufReader::new(stream).take(STATUS_LINE_BYTES_MAX).read_line(&mut answer).await.ok()?;
        serde_json::from_str(&answer).ok()
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await.ok().flatten()
}

/// The faultline-node binary: `FAULTLINE_NODE_BIN`, else next to the current
/// executable (or its parent, for test binaries in `deps/`), else
/// `target/{release,debug}` of `CARGO_TARGET_DIR` or of the workspace.
pub fn find_node_binary() -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("FAULTLINE_NODE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(not_found(format!("FAULTLINE_NODE_BIN={} is not a file", path.display())))
        };
    }
    let candidates = node_binary_candidates();
    candidates.iter().find(|path| path.is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        not_found(format!("looked in {}", looked.join(", ")))
    })
}

fn not_found(looked: String) -> ClusterError {
    ClusterError::ProgramNotFound {
        program: NODE_BINARY,
        hint: format!(
            "{looked}; build it with `cargo build --release -p faultline-node`, set FAULTLINE_NODE_BIN or pass --node-binary"
        ),
    }
}

const NODE_BINARY: &str = "faultline-node";

fn node_binary_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join(NODE_BINARY));
        }
    }
    let workspace_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target");
    let target_dirs = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).into_iter();
    for target in target_dirs.chain([workspace_target]) {
        for profile in ["release", "debug"] {
            candidates.push(target.join(profile).join(NODE_BINARY));
        }
    }
    candidates
}

/// The `--voters` a node starts with, when not every slot is one. Spare
/// slots are peers but not bootstrap voters. A node added to a running
/// cluster starts on an empty data dir as none either, as a learner does:
/// a member removed and added again under its old id used to come back as
/// a voter of the first membership, free to campaign with an empty log.
fn bootstrap_voters(node: usize, env: &NodeEnv) -> Option<Vec<usize>> {
    match &env.joining {
        Some(members) => Some(members.iter().copied().filter(|member| *member != node).collect()),
        None if env.initial_members.len() < env.peer_dial.len() + 1 => Some(env.initial_members.clone()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_gives_each_node_its_own_peer_view() {
        let db = FaultlineNodeDb { election_timeout_ms: Some(300), ..FaultlineNodeDb::new("/bin/node".into()) };
        let env = NodeEnv {
            node: 1,
            data_dir: "/tmp/d".into(),
            log_path: "/tmp/l".into(),
            client_listen: "127.0.0.1:7002".parse().unwrap(),
            peer_listen: "127.0.0.1:8002".parse().unwrap(),
            peer_dial: vec![(0, "127.0.0.1:9001".parse().unwrap()), (2, "127.0.0.1:9003".parse().unwrap())],
            client_peer_dial: Vec::new(),
            named_peers: Vec::new(),
            seed: 5,
            initial_members: vec![0, 1, 2],
            joining: None,
        };
        let launch = db.launch(1, &env).unwrap();
        let args = launch.args.join(" ");
        assert!(args.starts_with("--id 2 --data-dir /tmp/d --client-addr 127.0.0.1:7002"), "{args}");
        assert!(args.contains("--peers 1=127.0.0.1:9001,3=127.0.0.1:9003"), "{args}");
        assert!(args.ends_with("--election-timeout-ms 300"), "{args}");
        assert!(!args.contains("--voters"), "every slot is a bootstrap voter");
        let spare = NodeEnv { initial_members: vec![0, 2], ..env.clone() };
        assert!(db.launch(1, &spare).unwrap().args.join(" ").contains("--voters 1,3"), "a spare is no voter");
        let rejoining = NodeEnv { joining: Some(vec![0, 1, 2]), ..env };
        let args = db.launch(1, &rejoining).unwrap().args.join(" ");
        assert!(args.ends_with("--voters 1,3"), "a node added again joins as no voter: {args}");
    }

    #[test]
    fn the_violation_patterns_are_lines_the_node_writes() {
        // The node's own words, so a reworded message cannot silently
        // switch the check off.
        let sources = [include_str!("../../../../cluster-node/src/raft/error.rs"), include_str!("../../../../cluster-node/src/server/core.rs")];
        let db = FaultlineNodeDb::new("/bin/node".into());
        for pattern in db.log_error_patterns().iter().filter(|p| p.as_str() != "panicked at" && p.as_str() != "FATAL") {
            assert!(sources.iter().any(|source| source.contains(pattern.as_str())), "faultline-node never logs {pattern:?}");
        }
    }
}
