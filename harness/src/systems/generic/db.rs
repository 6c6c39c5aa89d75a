//! `GenericDb`: any system, described by commands instead of code.
//!
//! `start` is a shell command template that must run node i in the
//! foreground (use `exec`); the supervisor owns it like any node (process
//! group, pdeathsig, SIGKILL for kill, SIGSTOP/SIGCONT for pause). `wipe`
//! (optional; default: empty the data dir) runs with the node killed.
//! Readiness is `ready` exiting 0 (optional; default: the node's client
//! port accepts a TCP connection). Templates see `{node}` (0-based), `{id}`
//! (1-based), `{data_dir}`, `{client_addr}`, `{client_port}`, `{peer_addr}`,
//! `{peer_port}`, `{peers}` (`id=host:port,...` of the proxied peer
//! addresses this node dials) and `{peer_addrs}` (`host:port,...`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use tokio::io::AsyncReadExt;

use crate::cluster::{majority, BoxFuture, ClusterError, Db, NodeEnv, NodeLaunch, PeerRouting, StateDigest};

/// Bound on one `ready` or `leader` command (under the cluster's 1 s
/// probe bound).
const READY_COMMAND_TIMEOUT_MS: u64 = 900;
/// Output of a probe command read at most.
const PROBE_OUTPUT_BYTES_MAX: u64 = 4096;
/// Bound on one `wipe` command.
const WIPE_COMMAND_TIMEOUT_MS: u64 = 10_000;
/// Pause between checks of a running wipe command.
const WIPE_POLL_MS: u64 = 10;

#[derive(Clone, Debug)]
pub struct GenericDb {
    pub name: String,
    pub start: String,
    pub wipe: Option<String>,
    pub ready: Option<String>,
    /// Prints the leader's node (a 0-based index, or `n1` for node 0), or
    /// nothing when there is none.
    pub leader: Option<String>,
    /// Prints `DIGEST` or `POSITION DIGEST` of node i's applied state.
    pub digest: Option<String>,
    pub peer_routing: PeerRouting,
    /// Names of the further peer ports each node serves.
    pub peer_ports: Vec<String>,
    pub log_error_patterns: Vec<String>,
    /// Working directory of every command; None: the harness's own
    /// (the docs say to run generic specs from where their paths start).
    pub dir: Option<PathBuf>,
}

/// `template` with every placeholder of node `env.node` filled in: the
/// main peer port's (`{peer_port}`, `{peers}`, `{advertise_addr}`, ...) and
/// each named one's (`{peer_port:election}`, `{peers:election}`, ...).
pub fn render(template: &str, env: &NodeEnv) -> String {
    let mut text = template
        .replace("{node}", &env.node.to_string())
        .replace("{id}", &(env.node + 1).to_string())
        .replace("{data_dir}", &env.data_dir.display().to_string())
        .replace("{client_addr}", &env.client_listen.to_string())
        .replace("{client_port}", &env.client_listen.port().to_string());
    text = render_port(&text, "", env.peer_listen, &env.peer_dial, env.node);
    for port in &env.named_peers {
        text = render_port(&text, &format!(":{}", port.name), port.listen, &port.dial, env.node);
    }
    text
}

/// The placeholders of one peer port; `suffix` is `""` for the main port
/// and `":name"` for a named one.
fn render_port(template: &str, suffix: &str, listen: SocketAddr, dial: &[(usize, SocketAddr)], node: usize) -> String {
    let peers: Vec<String> = dial.iter().map(|(peer, addr)| format!("{}={addr}", peer + 1)).collect();
    let peer_addrs: Vec<String> = dial.iter().map(|(_, addr)| addr.to_string()).collect();
    // With shared routing the node's own entry is its advertised address.
    let advertised = dial.iter().find(|(peer, _)| *peer == node).map(|(_, addr)| *addr);
    let mut text = template
        .replace(&format!("{{peer_addr{suffix}}}"), &listen.to_string())
        .replace(&format!("{{peer_port{suffix}}}"), &listen.port().to_string())
        .replace(&format!("{{peers{suffix}}}"), &peers.join(","))
        .replace(&format!("{{peer_addrs{suffix}}}"), &peer_addrs.join(","));
    if let Some(advertised) = advertised {
        text = text
            .replace(&format!("{{advertise_addr{suffix}}}"), &advertised.to_string())
            .replace(&format!("{{advertise_port{suffix}}}"), &advertised.port().to_string());
    }
    text
}

impl GenericDb {
    fn shell(&self, script: String) -> NodeLaunch {
        let mut env = Vec::new();
        if let Some(dir) = &self.dir {
            env.push(("FAULTLINE_SPEC_DIR".to_string(), dir.display().to_string()));
        }
        let script = match &self.dir {
            Some(dir) => format!("cd '{}' || exit 1\n{script}", dir.display().to_string().replace('\'', "'\\''")),
            None => script,
        };
        NodeLaunch { program: PathBuf::from("/bin/sh"), args: vec!["-c".to_string(), script], env }
    }

    fn run_wipe(&self, template: &str, env: &NodeEnv) -> Result<(), ClusterError> {
        let launch = self.shell(render(template, env));
        let mut command = Command::new(&launch.program);
        command.args(&launch.args).envs(launch.env.iter().cloned()).stdin(Stdio::null());
        let spawn_error = |source| ClusterError::Spawn { node: env.node, program: launch.program.clone(), source };
        let mut child = command.spawn().map_err(spawn_error)?;
        let deadline = Instant::now() + Duration::from_millis(WIPE_COMMAND_TIMEOUT_MS);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(ClusterError::Config(format!("node {}: wipe command failed: {status}", env.node)))
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(WIPE_POLL_MS)),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ClusterError::Config(format!(
                        "node {}: wipe command did not finish within {WIPE_COMMAND_TIMEOUT_MS} ms",
                        env.node
                    )));
                }
            }
        }
    }
}

impl Db for GenericDb {
    fn name(&self) -> &str {
        &self.name
    }

    fn peer_routing(&self) -> PeerRouting {
        self.peer_routing
    }

    fn peer_port_names(&self) -> Vec<String> {
        self.peer_ports.clone()
    }

    fn launch(&self, _node: usize, env: &NodeEnv) -> Result<NodeLaunch, ClusterError> {
        Ok(self.shell(render(&self.start, env)))
    }

    fn wipe(&self, _node: usize, env: &NodeEnv) -> Result<(), ClusterError> {
        match &self.wipe {
            Some(template) => {
                self.run_wipe(template, env)?;
                std::fs::create_dir_all(&env.data_dir)
                    .map_err(|source| ClusterError::Files { path: env.data_dir.clone(), source })
            }
            None => crate::cluster::clear_dir(&env.data_dir),
        }
    }

    fn log_error_patterns(&self) -> Vec<String> {
        self.log_error_patterns.clone()
    }

    fn is_ready<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match &self.ready {
                Some(template) => run_probe(self.shell(render(template, env))).await.is_some(),
                None => TcpStream::connect(env.client_listen).await.is_ok(),
            }
        })
    }

    /// The `leader` command, run for every running node at once; the
    /// leader more than half of the answers name. Without the command a
    /// generic system names no leader.
    fn leader<'a>(&'a self, envs: &'a [NodeEnv]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move {
            let template = self.leader.as_deref()?;
            let mut probes = tokio::task::JoinSet::new();
            for env in envs {
                probes.spawn(run_probe(self.shell(render(template, env))));
            }
            let mut answers = Vec::with_capacity(envs.len());
            while let Some(output) = probes.join_next().await {
                answers.extend(output.ok().flatten().as_deref().and_then(parse_node));
            }
            majority(&answers)
        })
    }

    fn digest<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(async move {
            let output = run_probe(self.shell(render(self.digest.as_deref()?, env))).await?;
            parse_digest(&output)
        })
    }
}

/// Runs a probe command (`ready`, `leader`) of one node, bounded; its
/// output when it exits 0, else None.
async fn run_probe(launch: NodeLaunch) -> Option<String> {
    let mut command = tokio::process::Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let run = async {
        let mut output = Vec::new();
        (&mut stdout).take(PROBE_OUTPUT_BYTES_MAX).read_to_end(&mut output).await.ok()?;
        let status = child.wait().await.ok()?;
        status.success().then(|| String::from_utf8_lossy(&output).into_owned())
    };
    let bound = Duration::from_millis(READY_COMMAND_TIMEOUT_MS);
    let answer = tokio::time::timeout(bound, run).await.ok().flatten();
    if answer.is_none() {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.kill().await;
    }
    answer
}

/// A `digest` command's answer: `DIGEST`, or `POSITION DIGEST`.
fn parse_digest(output: &str) -> Option<StateDigest> {
    let words: Vec<&str> = output.split_whitespace().collect();
    match words.as_slice() {
        [digest] => Some(StateDigest { position: None, digest: digest.to_string() }),
        [position, digest] => Some(StateDigest { position: Some(position.parse().ok()?), digest: digest.to_string() }),
        _ => None,
    }
}

/// A node named by a `leader` command: `2` (a 0-based index) or `n3`.
fn parse_node(output: &str) -> Option<usize> {
    let text = output.trim();
    match text.strip_prefix('n') {
        Some(id) => id.parse::<usize>().ok()?.checked_sub(1),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> NodeEnv {
        NodeEnv {
            node: 1,
            data_dir: "/tmp/g".into(),
            log_path: "/tmp/l".into(),
            client_listen: "127.0.0.1:7001".parse().unwrap(),
            peer_listen: "127.0.0.1:8001".parse().unwrap(),
            peer_dial: vec![(0, "127.0.0.1:9000".parse().unwrap()), (2, "127.0.0.1:9002".parse().unwrap())],
            client_peer_dial: Vec::new(),
            named_peers: Vec::new(),
            seed: 1,
        }
    }

    #[test]
    fn templates_fill_every_placeholder() {
        let text = render("n{node} i{id} {data_dir} {client_addr} {client_port} {peer_addr} {peer_port} [{peers}] [{peer_addrs}]", &env());
        assert_eq!(
            text,
            "n1 i2 /tmp/g 127.0.0.1:7001 7001 127.0.0.1:8001 8001 [1=127.0.0.1:9000,3=127.0.0.1:9002] [127.0.0.1:9000,127.0.0.1:9002]"
        );
    }

    fn db(ready: Option<&str>, wipe: Option<&str>) -> GenericDb {
        GenericDb {
            name: "toy".into(),
            start: "exec sleep 5".into(),
            wipe: wipe.map(str::to_string),
            ready: ready.map(str::to_string),
            leader: None,
            digest: None,
            peer_routing: PeerRouting::PerPair,
            peer_ports: Vec::new(),
            log_error_patterns: vec![],
            dir: None,
        }
    }

    #[tokio::test]
    async fn ready_is_the_command_exit_status() {
        let env = env();
        assert!(db(Some("test {client_port} = 7001"), None).is_ready(1, &env).await);
        assert!(!db(Some("exit 3"), None).is_ready(1, &env).await);
        assert!(!db(Some("sleep 5"), None).is_ready(1, &env).await, "a hanging probe is not ready");
    }

    #[test]
    fn named_ports_and_the_advertised_address_have_placeholders() {
        let mut env = env();
        env.peer_dial.push((1, "127.0.0.1:9001".parse().unwrap()));
        env.named_peers.push(crate::cluster::NamedPeerPort {
            name: "election".into(),
            listen: "127.0.0.1:8101".parse().unwrap(),
            dial: (0..3).map(|n| (n, SocketAddr::from(([127, 0, 0, 1], 9100 + n as u16)))).collect(),
        });
        let text = render("{peer_port:election} [{peers:election}] {advertise_addr} {advertise_port:election} {peer_port}", &env);
        assert_eq!(text, "8101 [1=127.0.0.1:9100,2=127.0.0.1:9101,3=127.0.0.1:9102] 127.0.0.1:9001 9101 8001");
    }

    #[tokio::test]
    async fn the_leader_is_what_most_nodes_name() {
        let mut leader = db(None, None);
        let envs: Vec<NodeEnv> = (0..3).map(|node| NodeEnv { node, ..env() }).collect();
        assert_eq!(leader.leader(&envs).await, None, "no command: no leader");
        leader.leader = Some("test {node} = 2 || echo n2".into());
        assert_eq!(leader.leader(&envs).await, Some(1), "two of three say n2");
        leader.leader = Some("echo 2".into());
        assert_eq!(leader.leader(&envs).await, Some(2));
        leader.leader = Some("true".into());
        assert_eq!(leader.leader(&envs).await, None, "nothing printed: no leader");
        assert_eq!((parse_node(" 0\n"), parse_node("n1"), parse_node("n0"), parse_node("x")), (Some(0), Some(0), None, None));
        assert_eq!(parse_digest("abc\n"), Some(StateDigest { position: None, digest: "abc".into() }));
        assert_eq!(parse_digest("12 abc"), Some(StateDigest { position: Some(12), digest: "abc".into() }));
        assert_eq!((parse_digest(""), parse_digest("x y z"), parse_digest("x y")), (None, None, None));
    }

    #[test]
    fn wipe_runs_the_command_or_empties_the_data_dir() {
        let dir = std::env::temp_dir().join(format!("faultline-generic-wipe-{}", std::process::id()));
        let mut env = env();
        env.data_dir = dir.join("data");
        std::fs::create_dir_all(&env.data_dir).unwrap();
        std::fs::write(env.data_dir.join("f"), "x").unwrap();
        db(None, None).wipe(1, &env).unwrap();
        assert!(env.data_dir.is_dir() && !env.data_dir.join("f").exists());
        db(None, Some("touch {data_dir}/../wiped-{id}")).wipe(1, &env).unwrap();
        assert!(dir.join("wiped-2").exists());
        assert!(db(None, Some("exit 1")).wipe(1, &env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
