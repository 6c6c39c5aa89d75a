//! The cluster supervisor: runs each node of the system under test as a real
//! process behind the fault proxy, and kills, restarts, pauses, resumes and
//! wipes it on demand.
//!
//! Every child is forked from one dedicated long-lived thread
//! (`supervisor`), in its own process group, with `PR_SET_PDEATHSIG(SIGKILL)`,
//! so no child outlives the harness however it exits, and that thread reaps
//! every child. What a system needs to run is one `Db` implementation
//! (each system's lives in `crate::systems`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::proxy::FaultProxy;

mod config;
mod db;
mod error;
mod guard;
mod hosts;
mod launch;
mod members;
mod network;
mod ports;
mod programs;
mod routing;
mod signals;
mod supervisor;
mod volume;

use launch::node_env;
use network::PartitionLayers;
use ports::reserve_node_ports;
use supervisor::Supervisor;
use volume::Volumes;
mod clock;
mod disk;

pub use clock::find_libfaketime;
pub use config::{ClockConfig, ClusterConfig};
use config::validate;
pub use db::{
    clear_dir, majority, BoxFuture, Db, MemberError, Members, NamedPeerPort, NodeEnv, NodeFile, NodeLaunch, PeerRouting, StateDigest,
};
pub use hosts::netns::{available as netns_available, NETNS_MAX};
pub use hosts::{HostConfig, HostError, HostsConfig, NODE_PORT_BASE};
pub use members::MemberChange;
pub use error::ClusterError;
pub use guard::serve as serve_guard;
pub use programs::{faultline_binary, find_on_path, this_process_is_faultline};
pub use volume::{DiskFaults, VolumeConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    Killed,
}

/// A node process that exited without the harness asking for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnexpectedExit {
    pub node: usize,
    pub pid: u32,
    /// Exit code, or None when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A restart (a heal) after which the node never became ready: a crash at
/// startup, which must fail the run like any other crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRestart {
    pub node: usize,
    pub error: String,
}

/// A running cluster. Cheap to clone; `shutdown` (or dropping the last
/// clone) kills and reaps every node and closes the proxy.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<dyn Db>,
    config: ClusterConfig,
    proxy: FaultProxy,
    supervisor: Supervisor,
    volumes: Option<Volumes>,
    /// What each node is launched with; its ports change only when a start
    /// found them taken.
    envs: Mutex<Vec<NodeEnv>>,
    /// The proxied client address of each node.
    client_addrs: Vec<SocketAddr>,
    /// Proxy listeners forwarding to each node's client and peer ports.
    routes_to: Vec<RoutesTo>,
    failed_restarts: Mutex<Vec<FailedRestart>>,
    /// The partition each nemesis holds, by its name; the network enforces
    /// their union (`network.rs`).
    partitions: Mutex<PartitionLayers>,
    /// The nodes that are members now, sorted: the first `nodes` at the
    /// start, then as membership changes add and remove them.
    members: Mutex<Vec<usize>>,
    /// The hosts the nodes run on, when they are not on this machine.
    hosts: Option<Arc<hosts::Hosts>>,
    /// Lazyfs volumes on those hosts, for power loss.
    remote_volumes: Option<hosts::RemoteVolumes>,
}

/// The proxy listeners whose target is one node.
struct RoutesTo {
    client: SocketAddr,
    /// The shared route to the client port, for peers that dial it.
    client_shared: Option<SocketAddr>,
    peer: Vec<SocketAddr>,
    /// Listeners of each named peer port, in `Db::peer_port_names` order.
    named_peer: Vec<Vec<SocketAddr>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

impl Inner {
    /// Kill every node and daemon, close the hosts and the proxy, without
    /// awaiting (drops, signal handlers). Idempotent.
    fn stop_blocking(&self) {
        self.supervisor.stop_blocking();
        if let Some(volumes) = &self.volumes {
            volumes.stop_blocking();
        }
        if let Some(volumes) = &self.remote_volumes {
            volumes.stop_blocking();
        }
        if let Some(hosts) = &self.hosts {
            hosts.close_blocking();
        }
        self.proxy.shutdown();
    }
}

impl Cluster {
    /// Allocate ports, open the proxy routes (peer and client), start every
    /// node and wait until each is ready (bounded by `ready_timeout_ms`).
    pub async fn start(db: Arc<dyn Db>, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        validate(&config)?;
        if config.hosts.is_some() {
            return Cluster::start_on_hosts(db, config).await;
        }
        let proxy = FaultProxy::new(config.proxy.clone());
        let names = db.peer_port_names();
        let slots = config.nodes + config.spares;
        let reservations = reserve_node_ports(slots, names.len())?;
        let layout =
            routing::open_routes(&proxy, db.peer_routing(), db.peers_dial_client_ports(), &reservations).await?;
        let envs = (0..slots)
            .map(|node| node_env(&config, node, &reservations[node], &layout, &names))
            .collect::<Result<Vec<_>, _>>()?;
        // Without a faultline binary (a library user), PDEATHSIG alone
        // guards the nodes' direct children.
        let guard = programs::faultline_binary().ok().and_then(|program| guard::Guard::start(&program));
        let supervisor = Supervisor::start(slots, nix::sys::signal::Signal::SIGKILL, guard)?;
        let volumes = match &config.volumes {
            Some(volume_config) => {
                let data_dirs: Vec<PathBuf> = envs.iter().map(|env| env.data_dir.clone()).collect();
                match Volumes::start(volume_config.clone(), &data_dirs).await {
                    Ok(volumes) => Some(volumes),
                    Err(error) => {
                        proxy.shutdown();
                        return Err(error);
                    }
                }
            }
            None => None,
        };
        let members = (0..config.nodes).collect();
        let cluster = Cluster {
            inner: Arc::new(Inner {
                db,
                config,
                proxy,
                supervisor,
                volumes,
                envs: Mutex::new(envs),
                client_addrs: layout.client_addrs,
                routes_to: layout.routes_to,
                failed_restarts: Mutex::new(Vec::new()),
                partitions: Mutex::default(),
                members: Mutex::new(members),
                hosts: None,
                remote_volumes: None,
            }),
        };
        let mut reservations = reservations.into_iter().map(Some).collect::<Vec<_>>();
        // A spare's ports are freed now; if another process takes one
        // before the spare starts, its start moves it to fresh ports.
        reservations.truncate(cluster.nodes());
        cluster.start_nodes(reservations).await?;
        Ok(cluster)
    }

    /// Launch the first members, each just after freeing its reserved
    /// ports (if any), then wait for each; on failure the cluster is shut
    /// down.
    async fn start_nodes(&self, mut reservations: Vec<Option<ports::NodePorts>>) -> Result<(), ClusterError> {
        for node in 0..self.nodes() {
            if let Some(reserved) = reservations.get_mut(node) {
                drop(reserved.take());
            }
            if let Err(error) = self.launch(node).await {
                self.shutdown().await;
                return Err(error);
            }
        }
        // All nodes are already starting, so waiting for them one by one
        // takes about as long as the slowest.
        for node in 0..self.nodes() {
            if let Err(error) = self.settle(node).await {
                self.shutdown().await;
                return Err(error);
            }
        }
        Ok(())
    }

    /// The nodes the cluster started with (`0..nodes()`).
    pub fn nodes(&self) -> usize {
        self.inner.config.nodes
    }

    /// Every node number the cluster has room for, spares included
    /// (`0..slots()`).
    pub fn slots(&self) -> usize {
        self.inner.config.nodes + self.inner.config.spares
    }

    /// The proxied client address of `node`: clients must use this one.
    pub fn client_addr(&self, node: usize) -> SocketAddr {
        self.inner.client_addrs[node]
    }

    /// What node `node` was launched with (real, unproxied addresses).
    pub fn node_env(&self, node: usize) -> NodeEnv {
        lock(&self.inner.envs)[node].clone()
    }

    pub fn proxy(&self) -> &FaultProxy {
        &self.inner.proxy
    }

    /// The pid of the node's process while it is running or paused.
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.inner.supervisor.pid(node)
    }

    /// SIGKILL the node's process group and reap it. Killing a killed node
    /// does nothing.
    pub async fn kill(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        let pid = self.pid(node);
        self.inner.supervisor.kill(node).await?;
        if let Some(pid) = pid {
            self.inner.proxy.unregister_pid(pid);
        }
        Ok(())
    }

    /// Start the node again with the same data dir and wait until it is
    /// ready (bounded). A running or paused node is killed first.
    pub async fn restart(&self, node: usize) -> Result<(), ClusterError> {
        if !self.is_member(node) {
            return Ok(()); // A removed node stays down.
        }
        self.relaunch(node).await?;
        self.settle_restarted(node).await
    }

    /// Kill the node if it runs, then launch it again (not yet ready).
    async fn relaunch(&self, node: usize) -> Result<(), ClusterError> {
        self.kill(node).await?;
        self.launch(node).await
    }

    /// `restart` whose failure is the caller's to judge, not remembered as
    /// a failed restart: a node expected to refuse (its files were damaged
    /// on purpose) stays down when it does.
    pub async fn try_restart(&self, node: usize) -> Result<(), ClusterError> {
        if !self.is_member(node) {
            return Ok(());
        }
        self.relaunch(node).await?;
        self.settle(node).await
    }

    /// `settle` after a restart; a failure is remembered for the checks,
    /// unless a disk fault in force on the node explains it (the disk
    /// nemesis's heal starts it again).
    async fn settle_restarted(&self, node: usize) -> Result<(), ClusterError> {
        let settled = self.settle(node).await;
        if let (Err(error), false) = (&settled, self.inner.supervisor.is_failing(node)) {
            lock(&self.inner.failed_restarts).push(FailedRestart { node, error: error.to_string() });
        }
        settled
    }

    /// Power loss: SIGKILL the node and drop everything it wrote but did
    /// not fsync (its lazyfs daemon dies too and a new one mounts what was
    /// synced). The node stays down until `restart`. Needs
    /// `ClusterConfig::volumes`.
    pub async fn power_cut(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        if let Some(volumes) = &self.inner.remote_volumes {
            self.kill(node).await?;
            return volumes.cut(node).await;
        }
        let volumes = self.local_volumes("power loss")?;
        self.kill(node).await?;
        volumes.cut(node).await
    }

    /// The lazyfs volumes on this machine, which `what` needs.
    fn local_volumes(&self, what: &str) -> Result<&Volumes, ClusterError> {
        self.inner.volumes.as_ref().ok_or_else(|| ClusterError::Config(format!("{what} needs lazyfs volumes on this machine (ClusterConfig::volumes)")))
    }

    /// True when data dirs are lazyfs mounts (power cuts are possible).
    pub fn has_volumes(&self) -> bool {
        self.inner.volumes.is_some() || self.inner.remote_volumes.is_some()
    }

    /// Restart several nodes together: launch them all, then wait for each
    /// (a system whose readiness needs a quorum gets one). Every node is
    /// tried; the first error is returned.
    pub async fn restart_all(&self, nodes: &[usize]) -> Result<(), ClusterError> {
        // A removed node stays down.
        let mut unique: Vec<usize> = nodes.iter().copied().filter(|node| self.is_member(*node)).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut first_error = None;
        let mut launched = Vec::with_capacity(unique.len());
        for &node in &unique {
            match self.relaunch(node).await {
                Ok(()) => launched.push(node),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        for node in launched {
            if let Err(error) = self.settle_restarted(node).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// SIGSTOP the node's process group.
    pub fn pause(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        self.inner.supervisor.pause(node, true)
    }

    /// SIGCONT the node's process group.
    pub fn resume(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        self.inner.supervisor.pause(node, false)
    }

    /// Delete the node's data (through `Db::wipe`; on a host, the data
    /// dir there is emptied). The node must be killed.
    pub async fn wipe(&self, node: usize) -> Result<(), ClusterError> {
        self.check(node)?;
        if self.node_state(node) != NodeState::Killed {
            return Err(ClusterError::WrongState { node, state: "running", action: "wipe" });
        }
        if let Some(hosts) = &self.inner.hosts {
            return Ok(hosts.wipe(node).await?);
        }
        let db = self.inner.db.clone();
        let env = self.node_env(node);
        tokio::task::spawn_blocking(move || db.wipe(node, &env))
            .await
            .map_err(|_| ClusterError::SupervisorGone)?
    }

    /// The leader as the running members report it (best effort).
    pub async fn leader(&self) -> Option<usize> {
        self.leader_among(&self.members()).await
    }

    /// The leader as the running nodes among `nodes` report it: what one
    /// side of a partition believes (best effort).
    pub async fn leader_among(&self, nodes: &[usize]) -> Option<usize> {
        let envs: Vec<NodeEnv> = lock(&self.inner.envs)
            .iter()
            .filter(|env| nodes.contains(&env.node) && self.node_state(env.node) == NodeState::Running)
            .cloned()
            .collect();
        if envs.is_empty() {
            return None;
        }
        // A system could name a node that does not exist; that is no leader.
        self.inner.db.leader(&envs).await.filter(|leader| *leader < self.slots())
    }

    /// Each member's digest of its applied state, asked of all at once,
    /// by node; None for a member that is not running or did not answer.
    pub async fn digests(&self) -> Vec<(usize, Option<StateDigest>)> {
        let members = self.members();
        let envs: Vec<NodeEnv> = members.iter().map(|node| self.node_env(*node)).collect();
        let mut probes = tokio::task::JoinSet::new();
        for env in envs.into_iter().filter(|env| self.node_state(env.node) == NodeState::Running) {
            let db = self.inner.db.clone();
            probes.spawn(async move { (env.node, db.digest(env.node, &env).await) });
        }
        let mut digests: Vec<(usize, Option<StateDigest>)> = members.iter().map(|node| (*node, None)).collect();
        while let Some(answer) = probes.join_next().await {
            if let Ok((node, digest)) = answer {
                if let Some(slot) = digests.iter_mut().find(|(member, _)| *member == node) {
                    slot.1 = digest;
                }
            }
        }
        digests
    }

    /// Running, Paused, or Killed (also after a crash).
    pub fn node_state(&self, node: usize) -> NodeState {
        self.inner.supervisor.state(node)
    }

    /// Exits nobody asked for (crashes), in the order they were seen.
    pub fn unexpected_exits(&self) -> Vec<UnexpectedExit> {
        self.inner.supervisor.unexpected_exits()
    }

    /// Restarts after which the node never became ready, in order.
    pub fn failed_restarts(&self) -> Vec<FailedRestart> {
        lock(&self.inner.failed_restarts).clone()
    }

    /// The log of every node that ran, removed ones included.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        let envs = lock(&self.inner.envs);
        envs.iter().filter(|env| env.node < self.nodes() || env.log_path.exists()).map(|env| env.log_path.clone()).collect()
    }

    /// The patterns that mark an error line in a node log (from the `Db`).
    pub fn log_error_patterns(&self) -> Vec<String> {
        self.inner.db.log_error_patterns()
    }

    /// Kill and reap every node and close the proxy. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.supervisor.stop().await;
        if let Some(volumes) = &self.inner.volumes {
            volumes.stop().await;
        }
        if let Some(volumes) = &self.inner.remote_volumes {
            volumes.stop().await;
        }
        if let Some(hosts) = &self.inner.hosts {
            self.collect_logs(hosts).await;
            hosts.close().await;
        }
        self.inner.proxy.shutdown();
    }

    /// Like `shutdown`, for code that cannot await (signal handlers, drops).
    pub fn shutdown_blocking(&self) {
        self.inner.stop_blocking();
    }

    fn check(&self, node: usize) -> Result<(), ClusterError> {
        if node < self.slots() {
            Ok(())
        } else {
            Err(ClusterError::NoSuchNode(node))
        }
    }

}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // No code panics while holding these locks, so poisoned data is intact.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// On SIGINT or SIGTERM: shut the cluster down, then exit the process with
/// 128 + the signal number. Call once per run, inside the runtime.
pub fn install_signal_cleanup(cluster: &Cluster) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    signals::install(cluster.clone())
}
