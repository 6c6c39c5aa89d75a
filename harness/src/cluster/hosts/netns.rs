//! `netns: N`: N "hosts" on this machine, each a network namespace with its
//! own address on a bridge and its own sshd, so the SSH code path, the
//! firewall rules and the link shaping run for real in CI.
//!
//! Addresses come from 10.254.0.0/16, which only these namespaces use; the
//! namespaces have no default route and forwarding is not touched, so no
//! packet leaves the machine. Names carry the harness's pid and a letter
//! per lab of the process (`f<pid>a-<i>`, bridge `f<pid>ab`, veths
//! `f<pid>av<i>`): whatever a killed harness left behind is removed by the
//! next run that finds its pid dead.
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use super::{HostConfig, HostError};
use crate::cluster::supervisor::Supervisor;
use crate::cluster::NodeLaunch;

/// Most namespaces one run creates.
pub const NETNS_MAX: usize = 32;
/// Where sshd is installed (Debian `openssh-server`).
const SSHD: &str = "/usr/sbin/sshd";
/// Serialises subnet choice between runs started together.
const LOCK_PATH: &str = "/run/faultline-netns.lock";

/// The namespaces, bridge and sshds of one run.
pub(crate) struct Lab {
    prefix: String,
    pub addresses: Vec<Ipv4Addr>,
    /// The client key every sshd accepts, and the known hosts file naming
    /// each sshd's host key.
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    sshds: Option<Supervisor>,
}

fn lab_error(message: impl Into<String>) -> HostError {
    HostError::new("netns", message.into())
}

/// Run a command on this machine; its stdout, or an error naming it.
fn sh(program: &str, args: &[&str]) -> Result<String, HostError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| lab_error(format!("cannot run {program}: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(lab_error(format!("`{program} {}` failed: {}", args.join(" "), stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Lab {
    /// Create `count` namespaces with sshds; files go under `dir`.
    pub(crate) async fn create(count: usize, dir: &Path) -> Result<Lab, HostError> {
        if !(1..=NETNS_MAX).contains(&count) {
            return Err(lab_error(format!("netns must be in 1..={NETNS_MAX}, not {count}")));
        }
        available()?;
        remove_stale();
        std::fs::create_dir_all(dir).map_err(|error| lab_error(format!("cannot create {}: {error}", dir.display())))?;
        static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let letter = char::from(b'a' + (LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 26) as u8);
        let prefix = format!("f{}{letter}", std::process::id());
        let mut lab = Lab { prefix, addresses: Vec::new(), key: dir.join("client_key"), known_hosts: dir.join("known_hosts"), sshds: None };
        // On any error below, dropping `lab` removes what was made.
        let file = File::create(LOCK_PATH).map_err(|error| lab_error(format!("cannot open {LOCK_PATH}: {error}")))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| lab_error(format!("cannot lock {LOCK_PATH}: {errno}")))?;
        let subnet = free_subnet()?;
        lab.build_network(count, subnet)?;
        drop(lock);
        keygen(&lab.key)?;
        lab.start_sshds(dir).await?;
        Ok(lab)
    }

    /// The namespaces as hosts: root over SSH with the lab's key, each
    /// with its own directory under `dir`.
    pub(crate) fn host_configs(&self, dir: &Path) -> Vec<HostConfig> {
        self.addresses
            .iter()
            .enumerate()
            .map(|(host, address)| HostConfig {
                address: IpAddr::V4(*address),
                user: Some("root".to_string()),
                port: 22,
                key: Some(self.key.clone()),
                dir: dir.join(format!("host-{host}")).display().to_string(),
                sudo: false,
            })
            .collect()
    }

    fn namespace(&self, host: usize) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    fn build_network(&mut self, count: usize, subnet: u8) -> Result<(), HostError> {
        let bridge = self.bridge();
        sh("ip", &["link", "add", &bridge, "type", "bridge"])?;
        sh("ip", &["addr", "add", &format!("10.254.{subnet}.1/24"), "dev", &bridge])?;
        sh("ip", &["link", "set", &bridge, "up"])?;
        for host in 0..count {
            let namespace = self.namespace(host);
            let (outside, inside) = (format!("{}v{host}", self.prefix), format!("{}p{host}", self.prefix));
            let address = Ipv4Addr::new(10, 254, subnet, 10 + host as u8);
            sh("ip", &["netns", "add", &namespace])?;
            self.addresses.push(address);
            sh("ip", &["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            sh("ip", &["link", "set", &outside, "master", &bridge, "up"])?;
            sh("ip", &["link", "set", &inside, "netns", &namespace])?;
            let inside_ns = |args: &[&str]| {
                let mut full = vec!["netns", "exec", &namespace, "ip"];
                full.extend_from_slice(args);
                sh("ip", &full)
            };
            inside_ns(&["link", "set", &inside, "name", "eth0"])?;
            inside_ns(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
            inside_ns(&["link", "set", "eth0", "up"])?;
            inside_ns(&["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    async fn start_sshds(&mut self, dir: &Path) -> Result<(), HostError> {
        // sshd's privilege separation directory (Debian's service makes it).
        std::fs::create_dir_all("/run/sshd").map_err(|error| lab_error(format!("cannot create /run/sshd: {error}")))?;
        let supervisor = Supervisor::start(self.addresses.len(), Signal::SIGKILL, None).map_err(|e| lab_error(e.to_string()))?;
        let mut known = String::new();
        for (host, address) in self.addresses.iter().enumerate() {
            let host_key = dir.join(format!("host-{host}_key"));
            keygen(&host_key)?;
            let public = std::fs::read_to_string(format!("{}.pub", host_key.display()))
                .map_err(|error| lab_error(format!("cannot read host key: {error}")))?;
            known.push_str(&format!("{address} {}\n", public.trim()));
            let config = dir.join(format!("sshd-{host}.conf"));
            std::fs::write(&config, sshd_config(*address, &host_key, &self.key))
                .map_err(|error| lab_error(format!("cannot write {}: {error}", config.display())))?;
            let launch = NodeLaunch {
                program: PathBuf::from("ip"),
                args: ["netns", "exec", &self.namespace(host), SSHD, "-D", "-e", "-f", &config.display().to_string()]
                    .map(String::from)
                    .to_vec(),
                env: Vec::new(),
                files: Vec::new(),
            };
            let log = dir.join(format!("sshd-{host}.log"));
            supervisor.spawn(host, launch, log).await.map_err(|error| lab_error(error.to_string()))?;
        }
        std::fs::write(&self.known_hosts, known).map_err(|error| lab_error(format!("cannot write known_hosts: {error}")))?;
        self.sshds = Some(supervisor);
        Ok(())
    }

    /// Kill everything in the namespaces, then remove them and the bridge.
    /// Idempotent.
    pub(crate) fn destroy(&mut self) {
        if let Some(sshds) = self.sshds.take() {
            sshds.stop_blocking();
        }
        for host in 0..self.addresses.len() {
            // Deleted here, not left to the kernel's asynchronous cleanup
            // of the namespace, so nothing is left once `destroy` returns.
            let _ = sh("ip", &["link", "del", &format!("{}v{host}", self.prefix)]);
            remove_namespace(&self.namespace(host));
        }
        let _ = sh("ip", &["link", "del", &self.bridge()]);
        self.addresses.clear();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// SIGKILL every process in the namespace, then delete it (its veth end
/// goes with it).
fn remove_namespace(namespace: &str) {
    if let Ok(pids) = sh("ip", &["netns", "pids", namespace]) {
        for pid in pids.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = sh("ip", &["netns", "del", namespace]);
}

/// The harness pid in a name this module gives (`f<pid><letter>...`).
fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('f')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let letter = rest.as_bytes().get(digits)?;
    (digits > 0 && letter.is_ascii_lowercase()).then(|| rest[..digits].parse().ok()).flatten()
}

/// Remove the namespaces and bridges of harnesses that are gone.
pub(crate) fn remove_stale() -> usize {
    let mut removed = 0;
    let gone = |name: &str| owner(name).is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
    if let Ok(list) = sh("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|line| line.split_whitespace().next()).filter(|name| name.contains('-')) {
            if gone(name) {
                remove_namespace(name);
                removed += 1;
            }
        }
    }
    if let Ok(links) = sh("ip", &["-o", "link", "show", "type", "bridge"]) {
        for name in links.lines().filter_map(|line| line.split(':').nth(1)).map(str::trim) {
            if name.ends_with('b') && gone(name) {
                let _ = sh("ip", &["link", "del", name]);
            }
        }
    }
    removed
}

/// Why namespaces cannot be made here, if they cannot.
pub fn available() -> Result<(), HostError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(lab_error("netns hosts need root (creating namespaces, a bridge and sshds)"));
    }
    if !Path::new(SSHD).exists() {
        return Err(lab_error(format!("netns hosts need {SSHD} (Debian: apt-get install openssh-server)")));
    }
    sh("ip", &["-V"]).map(|_| ())
}

/// A /24 of 10.254.0.0/16 that no interface here uses.
fn free_subnet() -> Result<u8, HostError> {
    let used = sh("ip", &["-o", "-4", "addr", "show"])?;
    (1..=250u8)
        .find(|k| !used.contains(&format!("10.254.{k}.")))
        .ok_or_else(|| lab_error("every 10.254.k.0/24 is in use"))
}

fn keygen(path: &Path) -> Result<(), HostError> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(format!("{}.pub", path.display()));
    sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "faultline", "-f", &path.display().to_string()]).map(|_| ())
}

fn sshd_config(address: Ipv4Addr, host_key: &Path, client_key: &Path) -> String {
    format!(
        "ListenAddress {address}:22\nHostKey {}\nAuthorizedKeysFile {}.pub\nPidFile none\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nStrictModes no\nMaxSessions 200\nMaxStartups 200\nLogLevel ERROR\n",
        host_key.display(),
        client_key.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn names_tell_their_harness() {
        assert_eq!(owner("f1234a-0"), Some(1234));
        assert_eq!(owner("f1234cb"), Some(1234));
        assert_eq!(owner("f77zv12"), Some(77));
        assert_eq!(owner("fl1234-0"), None, "a letter must follow the pid");
        assert_eq!(owner("foo"), None);
        assert_eq!(owner("f-1"), None);
    }
}
