//! Bringing nodes up: launching a node's process with its env, waiting
//! (bounded) until it answers its readiness probe, and moving it to fresh
//! ports when another process took its own; plus the files and ports a
//! node starts with.
use std::time::{Duration, Instant};

use super::ports::{self, NodePorts};
use super::hosts::Role;
use super::routing::Layout;
use super::{lock, Cluster, ClusterConfig, ClusterError, NamedPeerPort, NodeEnv, NodeState, PeerRouting};

/// Launches of one node tried before its start fails.
const LAUNCH_ATTEMPTS_MAX: u32 = 3;
/// Bound on one readiness probe.
const READY_PROBE_TIMEOUT_MS: u64 = 1_000;
/// Pause between readiness probes.
const READY_POLL_MS: u64 = 25;

impl Cluster {
    /// Spawn the node's process with its current env.
    pub(super) async fn launch(&self, node: usize) -> Result<(), ClusterError> {
        let env = self.node_env(node);
        let mut launch = self.inner.db.launch(node, &env)?;
        let Some(hosts) = &self.inner.hosts else {
            self.preload_clock(node, &mut launch)?;
            for file in &launch.files {
                file.write_here()?;
            }
            let pid = self.inner.supervisor.spawn(node, launch, env.log_path.clone()).await?;
            if self.inner.db.peer_routing() == PeerRouting::Shared {
                self.inner.proxy.register_pid(pid, node);
            }
            return Ok(());
        };
        let remote = hosts.remote_launch(Role::Node, node, &launch, "kill -s KILL -- -$child").await?;
        self.inner.supervisor.spawn(node, remote, env.log_path.clone()).await?;
        Ok(())
    }

    /// Wait until the launched node is ready. A node that exits meanwhile
    /// (most often because another process took its port) is started again
    /// on fresh ports, a bounded number of times.
    pub(super) async fn settle(&self, node: usize) -> Result<(), ClusterError> {
        for attempt in 1..=LAUNCH_ATTEMPTS_MAX {
            let mut majority_was_down = false;
            match self.wait_ready(node, &mut majority_was_down).await {
                Ok(()) => {
                    self.inner.supervisor.started(node);
                    return Ok(());
                }
                // 126/127: the shell could not run the program; fresh ports
                // will not help.
                // A node on a host has its own fixed ports there.
                Err(ClusterError::ExitedEarly { code, .. })
                    if attempt < LAUNCH_ATTEMPTS_MAX && !matches!(code, Some(126 | 127)) && self.inner.hosts.is_none() =>
                {
                    let log_path = self.node_env(node).log_path;
                    set_aside_failed_start(&log_path).map_err(|source| ClusterError::Files { path: log_path, source })?;
                    self.move_ports(node)?;
                    self.launch(node).await?;
                }
                // Running, but cut off from its peers by a fault in force, or
                // with most nodes killed, paused or without power while it
                // waited: a system whose readiness needs a leader (etcd)
                // cannot be ready until that heals. Not a failed start: the
                // node runs on, and the checks after the final heal judge it.
                Err(ClusterError::NotReady { .. }) if majority_was_down || self.is_cut_off(node).await => {
                    crate::messages::warning(format_args!(
                        "node {node} runs but is not ready while faults cut it off or keep most nodes down; carrying on"
                    ));
                    self.inner.supervisor.started(node);
                    return Ok(());
                }
                Err(error) => {
                    let _ = self.inner.supervisor.kill(node).await;
                    return Err(error);
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Waits for `node` to be ready; `majority_was_down` is set when, at
    /// some poll, most of the cluster's nodes were not running.
    async fn wait_ready(&self, node: usize, majority_was_down: &mut bool) -> Result<(), ClusterError> {
        let env = self.node_env(node);
        let timeout_ms = self.inner.config.ready_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if self.node_state(node) == NodeState::Killed {
                let exit = self.inner.supervisor.last_exit(node);
                return Err(ClusterError::ExitedEarly {
                    node,
                    code: exit.and_then(|e| e.code),
                    signal: exit.and_then(|e| e.signal),
                    log: env.log_path,
                });
            }
            *majority_was_down |= self.majority_down();
            let probe = self.inner.db.is_ready(node, &env);
            let probe_bound = Duration::from_millis(READY_PROBE_TIMEOUT_MS);
            if let Ok(true) = tokio::time::timeout(probe_bound, probe).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
        Err(ClusterError::NotReady { node, timeout_ms, log: env.log_path })
    }

    /// True when at most half of the nodes are running (the others killed,
    /// paused or without power): no quorum can form.
    fn majority_down(&self) -> bool {
        let nodes = self.nodes();
        let running = (0..nodes).filter(|node| self.node_state(*node) == NodeState::Running).count();
        running * 2 <= nodes
    }

    /// Give the node fresh ports and point its proxy routes at them.
    fn move_ports(&self, node: usize) -> Result<(), ClusterError> {
        let client = ports::reserve()?.release();
        let peer = ports::reserve()?.release();
        let routes = &self.inner.routes_to[node];
        self.inner.proxy.retarget(routes.client, client)?;
        if let Some(listen) = routes.client_shared {
            self.inner.proxy.retarget(listen, client)?;
        }
        for listen in &routes.peer {
            self.inner.proxy.retarget(*listen, peer)?;
        }
        let mut named = Vec::with_capacity(routes.named_peer.len());
        for listeners in &routes.named_peer {
            let port = ports::reserve()?.release();
            for listen in listeners {
                self.inner.proxy.retarget(*listen, port)?;
            }
            named.push(port);
        }
        let mut envs = lock(&self.inner.envs);
        envs[node].client_listen = client;
        envs[node].peer_listen = peer;
        for (port, address) in envs[node].named_peers.iter_mut().zip(named) {
            port.listen = address;
        }
        Ok(())
    }
}


/// The files and addresses of one node; creates its directories.
pub(super) fn node_env(
    config: &ClusterConfig,
    node: usize,
    ports: &NodePorts,
    layout: &Layout,
    names: &[String],
) -> Result<NodeEnv, ClusterError> {
    let data_dir = config.dir.join(format!("node-{node}")).join("data");
    std::fs::create_dir_all(&data_dir)
        .map_err(|source| ClusterError::Files { path: data_dir.clone(), source })?;
    Ok(NodeEnv {
        node,
        data_dir,
        log_path: config.dir.join(format!("node-{node}.log")),
        client_listen: ports.client.addr(),
        peer_listen: ports.peer.addr(),
        peer_dial: layout.peer_dial[node].clone(),
        client_peer_dial: layout.client_peer_dial[node].clone(),
        named_peers: names
            .iter()
            .zip(&ports.named)
            .enumerate()
            .map(|(index, (name, port))| NamedPeerPort {
                name: name.clone(),
                listen: port.addr(),
                dial: layout.named_peer_dial[node][index].clone(),
            })
            .collect(),
        seed: config.seed.wrapping_add(node as u64 + 1),
        initial_members: (0..config.nodes).collect(),
        joining: None,
    })
}

/// Moves the output of a launch that exited before it was ready (from its
/// supervisor marker on) out of the node's log into
/// `node-N.failed-starts.log` beside it: the log checks then judge the
/// node that runs, not an attempt the retry replaced (etcd's fatal "address
/// already in use" made a CI run invalid), and the evidence is kept.
fn set_aside_failed_start(log_path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let text = std::fs::read(log_path)?;
    let marker = super::supervisor::LAUNCH_MARKER.as_bytes();
    let Some(at) = text.windows(marker.len()).rposition(|window| window == marker) else { return Ok(()) };
    let aside = log_path.with_extension("failed-starts.log");
    std::fs::OpenOptions::new().create(true).append(true).open(aside)?.write_all(&text[at..])?;
    std::fs::OpenOptions::new().write(true).open(log_path)?.set_len(at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_is_moved_out_of_the_log_the_checks_read() {
        let dir = std::env::temp_dir().join(format!("faultline-aside-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("node-0.log");
        let marker = super::super::supervisor::LAUNCH_MARKER;
        let earlier = format!("{marker} 0: a\nran, then was killed\n");
        let failed = format!("{marker} 0: a\nfatal: bind: address already in use\n");
        std::fs::write(&log, format!("{earlier}{failed}")).unwrap();
        set_aside_failed_start(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), earlier, "earlier lifetimes stay for the checks");
        assert_eq!(std::fs::read_to_string(dir.join("node-0.failed-starts.log")).unwrap(), failed);
        std::fs::write(&log, "no marker\n").unwrap();
        set_aside_failed_start(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "no marker\n", "a log without a launch is left alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
