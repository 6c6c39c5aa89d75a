//! Starting a cluster whose nodes run on hosts: every node's addresses are
//! its host's, on fixed ports, and no proxy route is opened.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{Hosts, RemoteVolumes, Role, NODE_PORT_BASE};
use crate::cluster::supervisor::{RemoteSignal, Supervisor};
use crate::cluster::{lock, Cluster, ClusterConfig, ClusterError, Db, Inner, NamedPeerPort, NodeEnv, PeerRouting};
use crate::proxy::FaultProxy;

impl Cluster {
    pub(in crate::cluster) async fn start_on_hosts(db: Arc<dyn Db>, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let Some(hosts_config) = &config.hosts else {
            return Err(ClusterError::Config("no hosts".into()));
        };
        let slots = config.nodes + config.spares;
        if hosts_config.len() < slots {
            return Err(ClusterError::Config(format!(
                "{} nodes (spares included) need as many hosts, and cluster.hosts gives {}",
                slots,
                hosts_config.len()
            )));
        }
        std::fs::create_dir_all(&config.dir).map_err(|source| ClusterError::Files { path: config.dir.clone(), source })?;
        let hosts = Arc::new(Hosts::open(hosts_config, &config.dir).await?);
        let names = db.peer_port_names();
        let envs: Vec<NodeEnv> = (0..slots).map(|node| host_env(&config, node, &hosts, &names, db.as_ref())).collect();
        let supervisor = match Supervisor::start(slots, nix::sys::signal::Signal::SIGKILL, None) {
            Ok(supervisor) => supervisor,
            Err(error) => {
                hosts.close().await;
                return Err(error);
            }
        };
        let remote_volumes = match &config.volumes {
            Some(volume_config) => match RemoteVolumes::start(hosts.clone(), volume_config.clone(), slots).await {
                Ok(volumes) => Some(volumes),
                Err(error) => {
                    supervisor.stop().await;
                    hosts.close().await;
                    return Err(error);
                }
            },
            None => None,
        };
        let signaller = hosts.clone();
        let remote: RemoteSignal = Arc::new(move |node, signal| signaller.signal(Role::Node, node, signal).map_err(|error| error.to_string()));
        supervisor.set_remote(remote);
        let cluster = Cluster {
            inner: Arc::new(Inner {
                db,
                proxy: FaultProxy::new(config.proxy.clone()),
                supervisor,
                volumes: None,
                client_addrs: envs.iter().map(|env| env.client_listen).collect(),
                envs: Mutex::new(envs),
                routes_to: Vec::new(),
                failed_restarts: Mutex::new(Vec::new()),
                partitions: Mutex::default(),
                members: Mutex::new((0..config.nodes).collect()),
                hosts: Some(hosts),
                remote_volumes,
                config,
            }),
        };
        cluster.start_nodes(Vec::new()).await?;
        Ok(cluster)
    }

    /// The address of the host each slot runs on; empty when every node
    /// runs on this machine.
    pub fn host_addresses(&self) -> Vec<std::net::IpAddr> {
        match &self.inner.hosts {
            Some(hosts) => (0..self.slots()).map(|node| hosts.address(node)).collect(),
            None => Vec::new(),
        }
    }

    /// Append each node's log on its host to its local log.
    pub(in crate::cluster) async fn collect_logs(&self, hosts: &Hosts) {
        let envs = lock(&self.inner.envs).clone();
        for env in envs.iter().filter(|env| env.node < self.nodes() || env.log_path.exists()) {
            if let Err(error) = hosts.fetch_log(env.node, &env.log_path).await {
                crate::messages::warning(format_args!("{error}"));
            }
        }
    }
}

/// Node `node`'s env on host `node`: client port `NODE_PORT_BASE`, peer
/// port the next, named peer ports after; peers dialled directly.
fn host_env(config: &ClusterConfig, node: usize, hosts: &Hosts, names: &[String], db: &dyn Db) -> NodeEnv {
    let slots = config.nodes + config.spares;
    let at = |host: usize, offset: usize| SocketAddr::new(hosts.address(host), NODE_PORT_BASE + offset as u16);
    // With shared routing a node's own entry is what it advertises.
    let shared = db.peer_routing() == PeerRouting::Shared;
    let dial = |offset: usize| (0..slots).filter(|peer| shared || *peer != node).map(|peer| (peer, at(peer, offset))).collect();
    NodeEnv {
        node,
        data_dir: hosts.data_dir(node),
        log_path: config.dir.join(format!("node-{node}.log")),
        client_listen: at(node, 0),
        peer_listen: at(node, 1),
        peer_dial: dial(1),
        client_peer_dial: match db.peers_dial_client_ports() {
            true => (0..slots).map(|peer| (peer, at(peer, 0))).collect(),
            false => Vec::new(),
        },
        named_peers: names
            .iter()
            .enumerate()
            .map(|(index, name)| NamedPeerPort { name: name.clone(), listen: at(node, 2 + index), dial: dial(2 + index) })
            .collect(),
        seed: config.seed.wrapping_add(node as u64 + 1),
        initial_members: (0..config.nodes).collect(),
        joining: None,
    }
}
