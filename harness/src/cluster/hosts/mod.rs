//! Nodes on hosts reached over SSH (`cluster.hosts`), or on namespaces of
//! this machine that stand in for hosts (`netns: N`, the same code path).
//!
//! Node i runs on host i, listening on the host's own address on fixed
//! ports; peers and clients dial those addresses directly, with no proxy
//! between them. Faults use the hosts' own mechanisms: signals sent over
//! SSH to the node's process group, iptables rules in a chain of faultline's
//! own for partitions, `tc` for slow and delayed links (`firewall`).
//!
//! A node is started by `ssh host -- sh` running it under `setsid` in a
//! session of its own, its pid in a file on the host, so the node does not
//! depend on the SSH connection: the harness kills it by that pid. When the
//! harness dies without cleaning up, the next run to connect to the host
//! kills every node group a pid file names and removes faultline's rules
//! (`clean_host`); with `netns`, the next run removes the namespaces of
//! harnesses that are gone, and everything in them.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::supervisor::Supervisor;
use super::ClusterError;

mod firewall;
pub(crate) mod netns;
mod process;
mod ssh;
mod start;
mod volumes;

pub(crate) use process::Role;
pub(crate) use volumes::RemoteVolumes;

use ssh::{quote, Ssh};

/// The first of a node's ports on its host: client, then peer, then each
/// named peer port in order.
pub const NODE_PORT_BASE: u16 = 7100;

/// Where the hosts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostsConfig {
    /// Namespaces of this machine, with an sshd each (needs root).
    Netns(usize),
    /// Real hosts, node i on the i-th.
    Listed(Vec<HostConfig>),
}

/// One host as the spec gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// An IP address: firewall rules match addresses, not names.
    pub address: IpAddr,
    pub user: Option<String>,
    pub port: u16,
    /// A private key (`ssh -i`); None: ssh's own configuration decides.
    pub key: Option<PathBuf>,
    /// faultline's working directory on the host.
    pub dir: String,
    /// Run iptables and tc through `sudo -n` (a user that is not root).
    pub sudo: bool,
}

impl HostsConfig {
    pub fn len(&self) -> usize {
        match self {
            HostsConfig::Netns(count) => *count,
            HostsConfig::Listed(hosts) => hosts.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What went wrong on one host.
#[derive(Debug, thiserror::Error)]
#[error("host {host}: {message}")]
pub struct HostError {
    pub host: String,
    pub message: String,
}

impl HostError {
    pub(crate) fn new(host: &str, message: String) -> HostError {
        HostError { host: host.to_string(), message }
    }
}

/// One connected host.
pub(crate) struct Host {
    pub address: IpAddr,
    ssh: Ssh,
    /// faultline's directory on the host, across runs.
    dir: String,
    /// This run's directory on the host (node data, logs, programs).
    run_dir: String,
    /// Pid files of the nodes running there, across runs (`clean_host`).
    pids_dir: String,
    sudo: bool,
}

impl Host {
    fn privileged(&self, command: &str) -> String {
        match self.sudo {
            true => format!("sudo -n {command}"),
            false => command.to_string(),
        }
    }

    fn pid_file(&self, role: Role, node: usize) -> String {
        format!("{}/{}-{node}.pid", self.pids_dir, role.name())
    }
}

/// The connected hosts of one cluster.
pub(crate) struct Hosts {
    hosts: Vec<Host>,
    masters: Supervisor,
    lab: std::sync::Mutex<Option<netns::Lab>>,
    faults: tokio::sync::Mutex<firewall::NetFaults>,
    /// The local directory of the cluster's files (ssh and lazyfs logs).
    local_dir: PathBuf,
    /// Programs already copied to each host this run (host, local path).
    uploaded: std::sync::Mutex<std::collections::BTreeSet<(usize, PathBuf)>>,
    /// The masters' control sockets: a short path of its own, as a Unix
    /// socket's path must fit in 108 bytes.
    socket_dir: PathBuf,
}

impl Hosts {
    /// Make the namespaces (`netns`), connect to every host, clean what an
    /// earlier run left there, and make this run's directory. `dir` is the
    /// local directory of the cluster's files.
    pub(crate) async fn open(config: &HostsConfig, dir: &Path) -> Result<Hosts, ClusterError> {
        let (lab, listed) = match config {
            HostsConfig::Netns(count) => {
                let lab = netns::Lab::create(*count, &dir.join("netns")).await?;
                let hosts = lab.host_configs(dir);
                (Some(lab), hosts)
            }
            HostsConfig::Listed(hosts) => (None, hosts.clone()),
        };
        let masters = Supervisor::start(listed.len(), Signal::SIGKILL, None)?;
        static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let opened = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket_dir = std::env::temp_dir().join(format!("fl{}-{opened}", std::process::id()));
        std::fs::create_dir_all(&socket_dir).map_err(|source| ClusterError::Files { path: socket_dir.clone(), source })?;
        let tag = format!("run-{}-{}", std::process::id(), unix_ms());
        let mut hosts = Vec::with_capacity(listed.len());
        for (index, host) in listed.iter().enumerate() {
            let ssh = connection(host, lab.as_ref(), &socket_dir, index);
            hosts.push(Host {
                address: host.address,
                ssh,
                dir: host.dir.clone(),
                run_dir: format!("{}/{tag}", host.dir),
                pids_dir: format!("{}/pids", host.dir),
                sudo: host.sudo,
            });
        }
        let opened = Hosts { hosts, masters, lab: std::sync::Mutex::new(lab), faults: Default::default(), local_dir: dir.to_path_buf(), uploaded: Default::default(), socket_dir };
        for (index, host) in opened.hosts.iter().enumerate() {
            let connected = opened.connect(index, &host.ssh, &dir.join(format!("ssh-{index}.log"))).await;
            if let Err(error) = connected {
                opened.close().await;
                return Err(error);
            }
        }
        for host in &opened.hosts {
            if let Err(error) = opened.clean_host(host).await {
                opened.close().await;
                return Err(error.into());
            }
        }
        Ok(opened)
    }

    /// Start host `index`'s master connection and wait until it is up; a
    /// master that gives up (the sshd refused it) is started again, all
    /// within `CONNECT_TIMEOUT_MS`.
    async fn connect(&self, index: usize, ssh: &Ssh, log: &Path) -> Result<(), ClusterError> {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_millis(ssh::CONNECT_TIMEOUT_MS);
        // Bounded by the deadline.
        while Instant::now() < deadline {
            if self.masters.state(index) == super::NodeState::Killed {
                self.masters.spawn(index, ssh.master_launch(), log.to_path_buf()).await?;
            }
            if ssh.connected().await {
                self.masters.started(index);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(ssh::CONNECT_POLL_MS)).await;
        }
        let why = std::fs::read_to_string(log).ok().and_then(|text| text.lines().rfind(|l| !l.starts_with("---")).map(String::from));
        Err(HostError::new(
            ssh.target(),
            format!("no SSH connection within {} ms: {}", ssh::CONNECT_TIMEOUT_MS, why.unwrap_or_else(|| "no answer".into())),
        )
        .into())
    }

    pub(crate) fn address(&self, node: usize) -> IpAddr {
        self.hosts[node].address
    }

    /// The node's data directory and log on its host.
    pub(crate) fn data_dir(&self, node: usize) -> PathBuf {
        PathBuf::from(format!("{}/node-{node}/data", self.hosts[node].run_dir))
    }

    fn remote_log(&self, role: Role, node: usize) -> String {
        format!("{}/{}-{node}.log", self.hosts[node].run_dir, role.name())
    }

    /// Kill the groups the pid files name (nodes and lazyfs daemons of an
    /// earlier run, whose harness died), detach the FUSE mounts it left
    /// under the host's directory, remove faultline's firewall chain and
    /// shaping, make this run's directories.
    async fn clean_host(&self, host: &Host) -> Result<(), HostError> {
        let script = format!(
            "mkdir -p {pids} {run}\nfor f in {pids}/*.pid; do [ -f \"$f\" ] || continue; pg=$(cat \"$f\"); \
             [ -n \"$pg\" ] && kill -s KILL -- -\"$pg\" 2>/dev/null; rm -f \"$f\"; done\n\
             awk -v d={dir}/ '$3 ~ /^fuse/ && index($2, d) == 1 {{print $2}}' /proc/mounts | \
             while read -r m; do {p}umount -l \"$m\"; done\n{}",
            firewall::clean_script(host),
            pids = quote(&host.pids_dir),
            run = quote(&host.run_dir),
            dir = quote(&host.dir),
            p = host.privileged(""),
        );
        host.ssh.run(&script).await.map(|_| ())
    }

    /// Empty the node's data directory on its host.
    pub(crate) async fn wipe(&self, node: usize) -> Result<(), HostError> {
        let dir = quote(&self.data_dir(node).display().to_string());
        self.hosts[node].ssh.run(&format!("mkdir -p {dir} && find {dir} -mindepth 1 -delete")).await.map(|_| ())
    }

    /// Append the node's log on its host to `local` (after the harness's
    /// own lines there).
    pub(crate) async fn fetch_log(&self, node: usize, local: &Path) -> Result<(), HostError> {
        let host = &self.hosts[node];
        let text = host.ssh.run(&format!("cat {} 2>/dev/null; exit 0", quote(&self.remote_log(Role::Node, node)))).await?;
        if text.is_empty() {
            return Ok(());
        }
        let header = format!("--- faultline: node {node}'s log from host {}\n", host.address);
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(local)
            .map_err(|error| HostError::new(&host.address.to_string(), format!("cannot open {}: {error}", local.display())))?;
        file.write_all(header.as_bytes())
            .and_then(|()| file.write_all(text.as_bytes()))
            .map_err(|error| HostError::new(&host.address.to_string(), format!("cannot write {}: {error}", local.display())))
    }

    /// Remove faultline's rules from every host, close the connections,
    /// remove the namespaces. Idempotent; errors are only said.
    pub(crate) async fn close(&self) {
        for host in &self.hosts {
            if let Err(error) = host.ssh.run(&firewall::clean_script(host)).await {
                crate::messages::warning(format_args!("{error}"));
            }
        }
        self.masters.stop().await;
        self.remove_local();
    }

    /// `close` for code that cannot await: the connections and namespaces
    /// go (a host's rules stay until the next run connects).
    pub(crate) fn close_blocking(&self) {
        self.masters.stop_blocking();
        self.remove_local();
    }

    /// What the connections leave on this machine: the control sockets'
    /// directory and, with `netns`, the namespaces.
    fn remove_local(&self) {
        let _ = std::fs::remove_dir_all(&self.socket_dir);
        if let Some(mut lab) = self.lab.lock().unwrap_or_else(|p| p.into_inner()).take() {
            lab.destroy();
        }
    }
}

/// The SSH connection to one host; namespaces get the lab's key and known
/// hosts and ignore the user's ssh configuration.
fn connection(host: &HostConfig, lab: Option<&netns::Lab>, socket_dir: &Path, index: usize) -> Ssh {
    let mut options = vec!["-p".to_string(), host.port.to_string()];
    if let Some(key) = &host.key {
        options.extend(["-i".to_string(), key.display().to_string(), "-o".to_string(), "IdentitiesOnly=yes".to_string()]);
    }
    if let Some(lab) = lab {
        options.extend(["-F".to_string(), "/dev/null".to_string()]);
        options.extend(["-o".to_string(), format!("UserKnownHostsFile={}", lab.known_hosts.display())]);
        options.extend(["-o".to_string(), "StrictHostKeyChecking=yes".to_string()]);
    }
    let target = match &host.user {
        Some(user) => format!("{user}@{}", host.address),
        None => host.address.to_string(),
    };
    Ssh::new(target, options, socket_dir.join(format!("{index}.sock")))
}

/// A program outside the system's directories (a build of faultline-node,
/// say) is copied to the host; a system one (`/usr/bin/etcd`) must be
/// installed there.
fn needs_upload(program: &Path) -> bool {
    let system = ["/usr/", "/bin/", "/sbin/", "/opt/", "/snap/"];
    program.is_absolute() && !system.iter().any(|prefix| program.starts_with(prefix))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_stay_and_builds_are_uploaded() {
        assert!(!needs_upload(Path::new("/usr/bin/etcd")));
        assert!(!needs_upload(Path::new("/bin/sh")));
        assert!(needs_upload(Path::new("/work/target/release/faultline-node")));
        assert!(!needs_upload(Path::new("ssh")), "a bare name is looked up on the host's PATH");
    }
}
