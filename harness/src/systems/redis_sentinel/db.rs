//! `RedisSentinelDb`: Redis with asynchronous replication and Sentinel
//! failover. Node i runs one `redis-server` and one `redis-sentinel`, in one
//! process group (the sentinel also dies with the server, by
//! `setpriv --pdeathsig`). Node 0 starts as the primary.
//!
//! Routing: the server listens on the node's peer port, behind a shared
//! proxy route, and every server, replica and sentinel addresses servers
//! by those proxied addresses (`replicaof`, `replica-announce-*`,
//! `sentinel monitor`), so replication and sentinel health checks cross
//! the proxy, attributed to the connecting node. The sentinel listens on
//! the node's client port and announces a shared route to it, so the
//! sentinels' gossip and votes cross the proxy too. Clients ask it through
//! the client route, then reach the primary through its shared route,
//! where they are not a node and so are never partitioned — a partitioned primary keeps acknowledging
//! writes that the failover then discards.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::{majority, BoxFuture, ClusterError, Db, NodeEnv, NodeFile, NodeLaunch, PeerRouting, StateDigest};
use crate::cluster::find_on_path;

use super::resp::{Reply, RespConnection};

/// The name sentinels monitor the primary under.
pub const MASTER_NAME: &str = "faultline";
/// Bound on one readiness or leader probe.
const PROBE_TIMEOUT_MS: u64 = 500;

#[derive(Clone, Debug)]
pub struct RedisSentinelDb {
    pub server_binary: PathBuf,
    pub sentinel_binary: PathBuf,
    /// `setpriv`, to tie each sentinel's life to its server; None: the
    /// process-group kill alone ends it.
    pub setpriv: Option<PathBuf>,
    /// Sentinel's `down-after-milliseconds`.
    pub down_after_ms: u64,
    /// Sentinel's `failover-timeout`.
    pub failover_timeout_ms: u64,
    /// Redis 7 and later refuse DEBUG unless told otherwise (and earlier
    /// versions refuse the setting that tells them).
    pub debug_command_is_off: bool,
}

impl RedisSentinelDb {
    /// `redis-server`, `redis-sentinel` (and `setpriv` if present) on PATH.
    pub fn from_path() -> Result<Self, ClusterError> {
        let server_binary = find_on_path("redis-server")?;
        let debug_command_is_off = major_version(&server_binary).is_some_and(|major| major >= 7);
        Ok(RedisSentinelDb {
            server_binary,
            sentinel_binary: find_on_path("redis-sentinel")?,
            setpriv: find_on_path("setpriv").ok(),
            down_after_ms: 1_000,
            failover_timeout_ms: 3_000,
            debug_command_is_off,
        })
    }

    fn server_conf(&self, node: usize, env: &NodeEnv, routes: &Routes) -> String {
        let mut conf = format!(
            "bind {}\nport {}\ndir {}\ndaemonize no\nsave \"\"\nappendonly yes\nappendfsync everysec\n\
             replica-announce-ip {}\nreplica-announce-port {}\nrepl-ping-replica-period 1\nrepl-timeout 3\n",
            env.peer_listen.ip(),
            env.peer_listen.port(),
            quoted_conf_path(&env.data_dir),
            routes.own.ip(),
            routes.own.port(),
        );
        if self.debug_command_is_off {
            // Redis 7 turns DEBUG off by default; the convergence check
            // needs DEBUG DIGEST from the harness, which is local unless the
            // node runs on a host.
            let from = if env.peer_listen.ip().is_loopback() { "local" } else { "yes" };
            conf.push_str(&format!("enable-debug-command {from}\n"));
        }
        if node != 0 {
            conf.push_str(&format!("replicaof {} {}\n", routes.primary.ip(), routes.primary.port()));
        }
        conf.push_str(protected_mode(env));
        conf
    }

    fn sentinel_conf(&self, env: &NodeEnv, routes: &Routes) -> String {
        let quorum = routes.nodes / 2 + 1;
        let mut conf = format!(
            "bind {}\nport {}\ndir {}\nsentinel announce-ip {}\nsentinel announce-port {}\n\
             sentinel monitor {MASTER_NAME} {} {} {quorum}\n\
             sentinel down-after-milliseconds {MASTER_NAME} {}\nsentinel failover-timeout {MASTER_NAME} {}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            env.client_listen.ip(),
            env.client_listen.port(),
            quoted_conf_path(&env.data_dir),
            routes.own_sentinel.ip(),
            routes.own_sentinel.port(),
            routes.primary.ip(),
            routes.primary.port(),
            self.down_after_ms,
            self.failover_timeout_ms,
        );
        conf.push_str(protected_mode(env));
        conf
    }

    /// The ports go on the command line too, where they override the
    /// config files: a relaunch on fresh ports (the old ones were taken)
    /// must not reuse the ports the first launch wrote into them.
    fn script(&self, server_conf: &Path, sentinel_conf: &Path, env: &NodeEnv) -> String {
        let pdeath = match &self.setpriv {
            Some(setpriv) => format!("{} --pdeathsig KILL ", shell_quote(&setpriv.display().to_string())),
            None => String::new(),
        };
        format!(
            "exec 0</dev/null\n{pdeath}{} {} --port {} &\nexec {} {} --port {}\n",
            shell_quote(&self.sentinel_binary.display().to_string()),
            shell_quote(&sentinel_conf.display().to_string()),
            env.client_listen.port(),
            shell_quote(&self.server_binary.display().to_string()),
            shell_quote(&server_conf.display().to_string()),
            env.peer_listen.port(),
        )
    }
}

/// Without a password, Redis answers only loopback clients unless told
/// otherwise: a node on a host (its own address, on a test network) must
/// answer its peers and the harness.
fn protected_mode(env: &NodeEnv) -> &'static str {
    match env.peer_listen.ip().is_loopback() {
        true => "",
        false => "protected-mode no\n",
    }
}

/// The proxied addresses one node needs.
struct Routes {
    nodes: usize,
    own: SocketAddr,
    primary: SocketAddr,
    /// What this node's sentinel announces to the others.
    own_sentinel: SocketAddr,
}

fn routes(node: usize, env: &NodeEnv) -> Result<Routes, ClusterError> {
    let find = |dial: &[(usize, SocketAddr)], wanted: usize, what: &str| {
        dial.iter().find(|(peer, _)| *peer == wanted).map(|(_, addr)| *addr).ok_or_else(|| {
            ClusterError::Config(format!("redis node {node}: shared routing gave no {what} address for node {wanted}"))
        })
    };
    Ok(Routes {
        nodes: env.peer_dial.len(),
        own: find(&env.peer_dial, node, "server")?,
        primary: find(&env.peer_dial, 0, "server")?,
        own_sentinel: find(&env.client_peer_dial, node, "sentinel")?,
    })
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn quoted_conf_path(path: &Path) -> String {
    format!("\"{}\"", path.display().to_string().replace('\\', "\\\\").replace('"', "\\\""))
}

impl Db for RedisSentinelDb {
    fn name(&self) -> &str {
        "redis-sentinel"
    }

    fn peer_routing(&self) -> PeerRouting {
        PeerRouting::Shared
    }

    /// Sentinels gossip and vote with each other on their own ports.
    fn peers_dial_client_ports(&self) -> bool {
        true
    }

    fn launch(&self, node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        let routes = routes(node, env)?;
        let server_conf = env.data_dir.join("redis.conf");
        let sentinel_conf = env.data_dir.join("sentinel.conf");
        let script = self.script(&server_conf, &sentinel_conf, env);
        // Kept once written: Redis and Sentinel rewrite their own config
        // as the topology changes, and a restart must keep that.
        let files = vec![
            NodeFile { text: self.server_conf(node, env, &routes), path: server_conf, keep_existing: true },
            NodeFile { text: self.sentinel_conf(env, &routes), path: sentinel_conf, keep_existing: true },
        ];
        Ok(NodeLaunch {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_string(), script, format!("faultline-redis-{node}")],
            env: Vec::new(),
            files,
        })
    }

    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        crate::cluster::clear_dir(&env.data_dir)
    }

    fn log_error_patterns(&self) -> Vec<String> {
        vec!["REDIS BUG REPORT".to_string(), "Guru Meditation".to_string(), "ASSERTION FAILED".to_string()]
    }

    /// The server answers PING and the sentinel knows every other sentinel
    /// and every replica, each linked to the primary (else a failover could
    /// not gather its quorum, or would find no replica to promote).
    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let others = env.peer_dial.len().saturating_sub(1);
            let server = ask(env.peer_listen, &[b"PING"]).await;
            if server != Some(Reply::Simple("PONG".into())) {
                return false;
            }
            let sentinels = ask(env.client_listen, &[b"SENTINEL", b"sentinels", MASTER_NAME.as_bytes()]).await;
            let replicas = ask(env.client_listen, &[b"SENTINEL", b"replicas", MASTER_NAME.as_bytes()]).await;
            match (sentinels, replicas) {
                (Some(Reply::Array(Some(sentinels))), Some(Reply::Array(Some(replicas)))) => {
                    sentinels.len() >= others && replicas.len() >= others && replicas.iter().all(replica_is_linked)
                }
                _ => false,
            }
        })
    }

    /// The primary more than half of the answering sentinels name.
    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move {
            let mut named = Vec::new();
            for env in envs {
                let reply = ask(env.client_listen, &[b"SENTINEL", b"get-master-addr-by-name", MASTER_NAME.as_bytes()]).await;
                let Some(Reply::Array(Some(items))) = reply else { continue };
                let port = items.get(1).and_then(Reply::text).and_then(|p| p.parse::<u16>().ok());
                named.push(port.and_then(|port| node_of_port(envs, port)));
            }
            majority(&named.into_iter().flatten().collect::<Vec<_>>())
        })
    }

    /// `DEBUG DIGEST` of the server's data set, at its replication offset
    /// (`master_repl_offset`, which a replica reports for its own copy).
    fn digest<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(async move {
            let info = ask(env.peer_listen, &[b"INFO", b"replication"]).await?.text()?;
            let offset = info.lines().find_map(|line| line.strip_prefix("master_repl_offset:")).and_then(|o| o.trim().parse().ok());
            let digest = ask(env.peer_listen, &[b"DEBUG", b"DIGEST"]).await?.text()?;
            Some(StateDigest { position: offset, digest })
        })
    }
}

/// A `SENTINEL replicas` entry (flat field/value pairs) of a replica that
/// is up and linked to its primary.
fn replica_is_linked(entry: &Reply) -> bool {
    let Reply::Array(Some(fields)) = entry else { return false };
    let field = |name: &str| {
        fields.chunks(2).find(|pair| pair[0].text().as_deref() == Some(name)).and_then(|pair| pair.get(1)?.text())
    };
    field("flags").as_deref() == Some("slave") && field("master-link-status").as_deref() == Some("ok")
}

/// Which node serves on `port`, proxied (shared route) or real.
fn node_of_port(envs: &[NodeEnv], port: u16) -> Option<usize> {
    let by_route = envs.iter().flat_map(|env| env.peer_dial.iter()).find(|(_, addr)| addr.port() == port);
    by_route.map(|(node, _)| *node).or_else(|| envs.iter().find(|env| env.peer_listen.port() == port).map(|e| e.node))
}


/// The major version `redis-server --version` prints (`v=7.0.15`).
fn major_version(server: &Path) -> Option<u32> {
    let output = std::process::Command::new(server).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().find_map(|word| word.strip_prefix("v="))?;
    version.split('.').next()?.parse().ok()
}

/// One bounded command straight to a server or sentinel (not proxied).
async fn ask(addr: SocketAddr, args: &[&[u8]]) -> Option<Reply> {
    let exchange = async {
        let mut connection = RespConnection::connect(addr, PROBE_TIMEOUT_MS).await.ok()?;
        connection.command(args).await.ok()
    };
    tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(node: usize) -> NodeEnv {
        NodeEnv {
            node,
            data_dir: "/tmp/r".into(),
            log_path: "/tmp/l".into(),
            client_listen: "127.0.0.1:7001".parse().unwrap(),
            peer_listen: "127.0.0.1:8001".parse().unwrap(),
            peer_dial: (0..3).map(|n| (n, SocketAddr::from(([127, 0, 0, 1], 9000 + n as u16)))).collect(),
            client_peer_dial: (0..3).map(|n| (n, SocketAddr::from(([127, 0, 0, 1], 9100 + n as u16)))).collect(),
            named_peers: Vec::new(),
            seed: 1,
            initial_members: vec![0, 1, 2],
            joining: None,
        }
    }

    fn db() -> RedisSentinelDb {
        RedisSentinelDb {
            server_binary: "/usr/bin/redis-server".into(),
            sentinel_binary: "/usr/bin/redis-sentinel".into(),
            setpriv: Some("/usr/bin/setpriv".into()),
            down_after_ms: 1_000,
            failover_timeout_ms: 3_000,
            debug_command_is_off: true,
        }
    }

    #[test]
    fn replicas_follow_the_proxied_primary_and_announce_their_route() {
        let env = env(2);
        let routes = routes(2, &env).unwrap();
        let conf = db().server_conf(2, &env, &routes);
        assert!(conf.contains("port 8001\n"), "{conf}");
        assert!(conf.contains("replicaof 127.0.0.1 9000\n"), "{conf}");
        assert!(conf.contains("replica-announce-port 9002\n"), "{conf}");
        let primary = db().server_conf(0, &self::env(0), &super::routes(0, &self::env(0)).unwrap());
        assert!(!primary.contains("replicaof"), "{primary}");
    }

    #[test]
    fn sentinels_monitor_the_proxied_primary_with_a_majority_quorum() {
        let env = env(1);
        let conf = db().sentinel_conf(&env, &routes(1, &env).unwrap());
        assert!(conf.contains("port 7001\n"), "{conf}");
        assert!(conf.contains("sentinel monitor faultline 127.0.0.1 9000 2\n"), "{conf}");
        // Other sentinels reach this one through its proxied route.
        assert!(conf.contains("sentinel announce-port 9101\n"), "{conf}");
        assert!(conf.contains("down-after-milliseconds faultline 1000\n"), "{conf}");
    }

    #[test]
    fn the_sentinel_dies_with_its_server_and_both_take_the_current_ports() {
        let script = db().script(Path::new("/d/redis.conf"), Path::new("/d/it's.conf"), &env(1));
        assert!(
            script.contains("'/usr/bin/setpriv' --pdeathsig KILL '/usr/bin/redis-sentinel' '/d/it'\\''s.conf' --port 7001 &\n"),
            "{script}"
        );
        assert!(script.ends_with("exec '/usr/bin/redis-server' '/d/redis.conf' --port 8001\n"), "{script}");
    }

    #[test]
    fn only_linked_replicas_count() {
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        let entry = |flags: &str, link: &str| {
            Reply::Array(Some(vec![bulk("flags"), bulk(flags), bulk("master-link-status"), bulk(link)]))
        };
        assert!(replica_is_linked(&entry("slave", "ok")));
        assert!(!replica_is_linked(&entry("s_down,slave,disconnected", "ok")));
        assert!(!replica_is_linked(&entry("slave", "err")));
        assert!(!replica_is_linked(&Reply::Integer(1)));
    }

    #[test]
    fn ports_map_back_to_nodes() {
        let envs = vec![env(0)];
        assert_eq!(node_of_port(&envs, 9002), Some(2));
        assert_eq!(node_of_port(&envs, 8001), Some(0));
        assert_eq!(node_of_port(&envs, 1), None);
    }
}
