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
//! addresses this node dials), `{peer_addrs}` (`host:port,...`),
//! `{members}` / `{member_ids}` (the nodes it starts or joins with) and
//! `{cluster_state}` (`new`, or `existing` when it joins a running
//! cluster). The membership commands are run by [`membership`].
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::MemberCommands;
use crate::cluster::{majority, BoxFuture, ClusterError, Db, MemberError, Members, NodeEnv, NodeLaunch, PeerRouting, StateDigest};

mod membership;

pub use membership::EXIT_RETRY;
use membership::Change;

/// Bound on one `ready` or `leader` command (under the cluster's 1 s
/// probe bound).
const READY_COMMAND_TIMEOUT_MS: u64 = 900;
/// Output of a probe command read at most (stdout's first bytes, stderr's
/// last).
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
    /// Prints node i's wall clock (`SECONDS[.FRACTION] [MICROSECONDS]`).
    pub clock: Option<String>,
    pub peer_routing: PeerRouting,
    /// Names of the further peer ports each node serves.
    pub peer_ports: Vec<String>,
    pub log_error_patterns: Vec<String>,
    /// The optional membership commands; changes need `add_member` and
    /// `remove_member`.
    pub membership: MemberCommands,
    /// How many changes were sent: without a `leader` command, a change
    /// goes to the running members in turn, so one a partition cut off
    /// does not take every retry.
    pub(super) turn: Arc<AtomicUsize>,
    /// Working directory of every command; None: the harness's own
    /// (the docs say to run generic specs from where their paths start).
    pub dir: Option<PathBuf>,
}

/// `template` with every placeholder of node `env.node` filled in: the
/// main peer port's (`{peer_port}`, `{peers}`, `{advertise_addr}`, ...) and
/// each named one's (`{peer_port:election}`, `{peers:election}`, ...).
pub fn render(template: &str, env: &NodeEnv) -> String {
    // A joining node starts with the members it joins, the others with the
    // cluster's first members.
    let members = env.joining.as_ref().unwrap_or(&env.initial_members);
    let list = |offset: usize| members.iter().map(|member| (member + offset).to_string()).collect::<Vec<_>>().join(",");
    let cluster_state = if env.joining.is_some() { "existing" } else { "new" };
    let mut text = template
        .replace("{node}", &env.node.to_string())
        .replace("{id}", &(env.node + 1).to_string())
        .replace("{data_dir}", &env.data_dir.display().to_string())
        .replace("{client_addr}", &env.client_listen.to_string())
        .replace("{client_port}", &env.client_listen.port().to_string())
        .replace("{members}", &list(0))
        .replace("{member_ids}", &list(1))
        .replace("{cluster_state}", cluster_state);
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
        NodeLaunch { program: PathBuf::from("/bin/sh"), args: vec!["-c".to_string(), script], env, files: Vec::new() }
    }

    /// The outputs of `template` run for every node of `envs` at once, of
    /// those that exited 0 in time.
    async fn probe_all(&self, template: &str, envs: &[NodeEnv]) -> Vec<String> {
        let mut probes = tokio::task::JoinSet::new();
        for env in envs {
            probes.spawn(run_probe(self.shell(render(template, env))));
        }
        let mut outputs = Vec::with_capacity(envs.len());
        while let Some(output) = probes.join_next().await {
            outputs.extend(output.ok().flatten());
        }
        outputs
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
            let outputs = self.probe_all(self.leader.as_deref()?, envs).await;
            let answers: Vec<usize> = outputs.iter().filter_map(|output| parse_node(output)).collect();
            majority(&answers)
        })
    }

    fn digest<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<StateDigest>> {
        Box::pin(async move {
            let output = run_probe(self.shell(render(self.digest.as_deref()?, env))).await?;
            parse_digest(&output)
        })
    }

    fn clock_ms<'a>(&'a self, _node: usize, env: &'a NodeEnv) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let output = run_probe(self.shell(render(self.clock.as_deref()?, env))).await?;
            parse_clock_ms(&output)
        })
    }

    fn has_clock_probe(&self) -> bool {
        self.clock.is_some()
    }

    /// Both `add_member` and `remove_member` are given.
    fn supports_membership(&self) -> bool {
        self.membership.supported()
    }

    fn add_member<'a>(&'a self, node: usize, env: &'a NodeEnv, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(self.change(Change::Add, node, Some(env), members))
    }

    fn promote_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(self.change(Change::Promote, node, None, members))
    }

    fn remove_member<'a>(&'a self, node: usize, members: &'a [NodeEnv]) -> BoxFuture<'a, Result<(), MemberError>> {
        Box::pin(self.change(Change::Remove, node, None, members))
    }

    fn members<'a>(&'a self, members: &'a [NodeEnv]) -> BoxFuture<'a, Option<Members>> {
        Box::pin(self.reported_members(members))
    }
}

/// How a bounded command ended: its exit code (None: killed by a signal),
/// the first bytes of its stdout and the last of its stderr.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs a probe command (`ready`, `leader`, `digest`, `members`) of one
/// node, bounded; its output when it exits 0, else None.
async fn run_probe(launch: NodeLaunch) -> Option<String> {
    let finished = run_bounded(launch, READY_COMMAND_TIMEOUT_MS).await.ok()?;
    (finished.code == Some(0)).then_some(finished.stdout)
}

/// Runs one command in its own process group, bounded by `timeout_ms`;
/// Err says why it did not finish (it could not start, or it ran out of
/// time and its process group was killed).
async fn run_bounded(launch: NodeLaunch, timeout_ms: u64) -> Result<Finished, String> {
    let mut command = tokio::process::Command::new(&launch.program);
    command
        .args(&launch.args)
        .envs(launch.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| format!("could not start: {error}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("has no output pipes".into());
    };
    let mut stdout = stdout.take(PROBE_OUTPUT_BYTES_MAX);
    let run = async {
        let mut output = Vec::new();
        let head = stdout.read_to_end(&mut output);
        let (_, tail) = tokio::join!(head, read_tail(stderr, PROBE_OUTPUT_BYTES_MAX as usize));
        let status = child.wait().await.ok()?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Some(Finished { code: status.code(), stdout: text(&output), stderr: text(&tail) })
    };
    let finished = tokio::time::timeout(Duration::from_millis(timeout_ms), run).await.ok().flatten();
    if finished.is_none() {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.kill().await;
    }
    finished.ok_or_else(|| format!("did not finish within {timeout_ms} ms"))
}

/// The last `bytes_max` bytes `reader` gives before its end (bounded by
/// the caller's timeout).
async fn read_tail(mut reader: impl AsyncRead + Unpin, bytes_max: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(count @ 1..) = reader.read(&mut chunk).await {
        tail.extend_from_slice(&chunk[..count]);
        let excess = tail.len().saturating_sub(bytes_max);
        tail.drain(..excess);
    }
    tail
}

/// A `clock` command's answer in milliseconds: `SECONDS[.FRACTION]`, or
/// `SECONDS MICROSECONDS` on two lines or one (Redis's `TIME`).
fn parse_clock_ms(output: &str) -> Option<u64> {
    let numbers: Vec<&str> = output.split_whitespace().collect();
    match numbers.as_slice() {
        [seconds] => {
            let seconds: f64 = seconds.parse().ok()?;
            (seconds.is_finite() && seconds >= 0.0).then_some((seconds * 1_000.0) as u64)
        }
        [seconds, micros] => Some(seconds.parse::<u64>().ok()?.checked_mul(1_000)? + micros.parse::<u64>().ok()? / 1_000),
        _ => None,
    }
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
            initial_members: vec![0, 1, 2],
            joining: None,
        }
    }

    #[test]
    fn templates_fill_every_placeholder() {
        let text = render("n{node} i{id} {data_dir} {client_addr} {client_port} {peer_addr} {peer_port} [{peers}] [{peer_addrs}]", &env());
        assert_eq!(
            text,
            "n1 i2 /tmp/g 127.0.0.1:7001 7001 127.0.0.1:8001 8001 [1=127.0.0.1:9000,3=127.0.0.1:9002] [127.0.0.1:9000,127.0.0.1:9002]"
        );
        let members = "{members} {member_ids} {cluster_state}";
        assert_eq!(render(members, &env()), "0,1,2 1,2,3 new", "a first member starts with the first members");
        let joining = NodeEnv { node: 3, joining: Some(vec![0, 2, 3]), ..env() };
        assert_eq!(render(members, &joining), "0,2,3 1,3,4 existing", "a joining node with those it joins");
    }

    #[tokio::test]
    async fn bounded_commands_keep_the_end_of_stderr_and_are_killed_in_time() {
        let shell = |script: &str| db(None, None).shell(script.to_string());
        let finished = run_bounded(shell("echo out; echo first >&2; echo last >&2; exit 3"), 900).await.unwrap();
        assert_eq!((finished.code, finished.stdout.as_str(), finished.stderr.as_str()), (Some(3), "out\n", "first\nlast\n"));
        let long = run_bounded(shell("head -c 10000 /dev/zero | tr '\\0' x >&2; echo end >&2"), 900).await.unwrap();
        assert_eq!(long.stderr.len(), PROBE_OUTPUT_BYTES_MAX as usize);
        assert!(long.stderr.ends_with("xxxend\n"), "the tail is kept");
        let started = Instant::now();
        let error = run_bounded(shell("sleep 5 & sleep 5"), 200).await.err();
        assert_eq!(error.as_deref(), Some("did not finish within 200 ms"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    fn db(ready: Option<&str>, wipe: Option<&str>) -> GenericDb {
        GenericDb {
            name: "toy".into(),
            start: "exec sleep 5".into(),
            wipe: wipe.map(str::to_string),
            ready: ready.map(str::to_string),
            leader: None,
            digest: None,
            clock: None,
            peer_routing: PeerRouting::PerPair,
            peer_ports: Vec::new(),
            log_error_patterns: vec![],
            membership: MemberCommands::default(),
            turn: Arc::default(),
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
        assert_eq!(parse_clock_ms("1733380000.25\n"), Some(1_733_380_000_250));
        assert_eq!(parse_clock_ms("1733380000\n123456\n"), Some(1_733_380_000_123));
        assert_eq!((parse_clock_ms(""), parse_clock_ms("soon"), parse_clock_ms("-1"), parse_clock_ms("1 2 3")), (None, None, None, None));
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
