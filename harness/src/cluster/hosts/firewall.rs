//! Network faults on hosts, with the hosts' own tools: a partition is DROP
//! rules in an iptables chain of faultline's own (`FAULTLINE`, jumped to
//! from INPUT) plus `ss -K`, which aborts the established connections the
//! rules now cut, so a partition never leaves a connection that merely
//! waits for the cut to end; a slow or delayed link is an HTB class (and a
//! netem qdisc under it) under a root qdisc whose handle (`fa1:`) marks it
//! as faultline's. Healing and cleaning remove the chain and that qdisc.
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Host, HostError, Hosts};
use crate::proxy::{Endpoint, Grudge, LinkFault};

const CHAIN: &str = "FAULTLINE";

/// Remove faultline's chain and shaping from the host; succeeds when there
/// is nothing to remove.
pub(super) fn clean_script(host: &Host) -> String {
    let p = host.privileged("");
    format!(
        "{p}iptables -D INPUT -j {CHAIN} 2>/dev/null; {p}iptables -F {CHAIN} 2>/dev/null; {p}iptables -X {CHAIN} 2>/dev/null\n\
         for dev in $(ls /sys/class/net); do {p}tc qdisc show dev \"$dev\" 2>/dev/null | grep -q 'qdisc htb fa1: root' && \
         {p}tc qdisc del dev \"$dev\" root; done\nexit 0\n"
    )
}

/// The chain exists and INPUT jumps to it.
fn chain_script(host: &Host) -> String {
    let p = host.privileged("");
    format!("{p}iptables -N {CHAIN} 2>/dev/null || true; {p}iptables -C INPUT -j {CHAIN} 2>/dev/null || {p}iptables -I INPUT 1 -j {CHAIN} || exit 1\n")
}

/// Abort the TCP connections between the host and `peer`; prints one line
/// per connection aborted.
fn abort_script(host: &Host, peer: IpAddr) -> String {
    format!("{}ss -H -K -t dst {peer} || exit 1\n", host.privileged(""))
}

/// What one host must do for a set of faults.
#[derive(Default)]
struct HostRules {
    /// Sources whose packets it drops (or resets, when true).
    blocked: BTreeMap<IpAddr, bool>,
    /// Destinations whose traffic it shapes.
    shaped: BTreeMap<IpAddr, LinkFault>,
}

/// The network faults in force on the hosts, as the proxy keeps them: a
/// partition (replaced as a whole) and link faults (added per link).
#[derive(Default)]
pub(super) struct NetFaults {
    grudge: Grudge,
    links: BTreeMap<(usize, usize), LinkFault>,
}

impl Hosts {
    /// Replace the partition in force by `grudge` (receiver → the senders
    /// it loses). Returns the established connections the cut aborted.
    pub(crate) async fn partition(&self, grudge: &Grudge) -> Result<usize, HostError> {
        let mut faults = self.faults.lock().await;
        faults.grudge = grudge.clone();
        self.apply(&faults).await
    }

    /// Set `fault` on each (from, to) link between nodes; links to or from
    /// clients are not shaped on hosts. Returns the connections aborted.
    pub(crate) async fn set_link_faults(&self, links: &[(Endpoint, Endpoint)], fault: LinkFault) -> Result<usize, HostError> {
        let mut faults = self.faults.lock().await;
        for (from, to) in links {
            if let (Endpoint::Node(from), Endpoint::Node(to)) = (*from, *to) {
                faults.links.insert((from, to), fault);
            }
        }
        self.apply(&faults).await
    }

    /// Whether every host can delay a link (its kernel has netem): a
    /// netem qdisc under faultline's handle, added to `lo` and removed at
    /// once. The error names the first host that cannot.
    pub(crate) async fn check_netem(&self) -> Result<(), HostError> {
        for host in &self.hosts {
            let p = host.privileged("");
            let probe = format!("{p}tc qdisc add dev lo root handle fa1: netem delay 0ms && {p}tc qdisc del dev lo root handle fa1:");
            host.ssh.run(&probe).await.map_err(explain_netem)?;
        }
        Ok(())
    }

    /// The partition and link faults in force, as the proxy reports its own.
    pub(crate) async fn faults_in_force(&self) -> (Grudge, BTreeMap<(Endpoint, Endpoint), LinkFault>) {
        let faults = self.faults.lock().await;
        let links = faults.links.iter().map(|((from, to), fault)| ((Endpoint::Node(*from), Endpoint::Node(*to)), *fault)).collect();
        (faults.grudge.clone(), links)
    }

    /// Remove every link fault; a partition stays.
    pub(crate) async fn clear_link_faults(&self) -> Result<(), HostError> {
        let mut faults = self.faults.lock().await;
        faults.links.clear();
        self.apply(&faults).await.map(|_| ())
    }

    async fn clear(&self) -> Result<(), HostError> {
        for host in &self.hosts {
            host.ssh.run(&clean_script(host)).await?;
        }
        Ok(())
    }

    /// Clear every host, then give each its rules; the count of
    /// connections aborted.
    async fn apply(&self, faults: &NetFaults) -> Result<usize, HostError> {
        self.clear().await?;
        let mut aborted = 0;
        let addresses: Vec<IpAddr> = self.hosts.iter().map(|host| host.address).collect();
        for (host, rules) in self.hosts.iter().zip(rules(&addresses, faults)) {
            if rules.blocked.is_empty() && rules.shaped.is_empty() {
                continue;
            }
            let script = host_script(host, &rules);
            let output = host.ssh.run(&script).await.map_err(explain_netem)?;
            aborted += output.lines().filter(|line| !line.trim().is_empty()).count();
        }
        Ok(aborted)
    }
}

/// What each host must do for `faults`, node i being on `addresses[i]`:
/// a receiver drops (or resets) what its cut-off senders send it; a
/// sender shapes what it sends over a slow or delayed link.
fn rules(addresses: &[IpAddr], faults: &NetFaults) -> Vec<HostRules> {
    let mut rules: Vec<HostRules> = addresses.iter().map(|_| HostRules::default()).collect();
    let known = |node: usize| node < addresses.len();
    for (receiver, senders) in &faults.grudge {
        for sender in senders.iter().filter(|sender| *sender != receiver && known(**sender)) {
            if let Some(host) = rules.get_mut(*receiver) {
                host.blocked.insert(addresses[*sender], false);
            }
        }
    }
    for ((from, to), fault) in &faults.links {
        if !known(*from) || !known(*to) || from == to {
            continue;
        }
        if fault.drop || fault.reset || fault.bandwidth_bytes_per_s == Some(0) {
            let reset = fault.reset || rules[*to].blocked.get(&addresses[*from]).copied().unwrap_or(false);
            rules[*to].blocked.insert(addresses[*from], reset);
        } else if fault.delay_ms > 0 || fault.jitter_ms > 0 || fault.bandwidth_bytes_per_s.is_some() {
            rules[*from].shaped.insert(addresses[*to], *fault);
        }
    }
    rules
}

fn host_script(host: &Host, rules: &HostRules) -> String {
    let p = host.privileged("");
    let mut script = String::from("set -e\n");
    if !rules.blocked.is_empty() {
        script.push_str(&chain_script(host));
        for (source, reset) in &rules.blocked {
            let target = match reset {
                true => "-p tcp -j REJECT --reject-with tcp-reset",
                false => "-j DROP",
            };
            script.push_str(&format!("{p}iptables -A {CHAIN} -s {source} {target}\n"));
        }
        // After the rules, so a connection cannot re-form in between.
        for source in rules.blocked.keys() {
            script.push_str(&abort_script(host, *source));
        }
    }
    for (class, (destination, fault)) in rules.shaped.iter().enumerate() {
        script.push_str(&shape_script(host, class + 1, *destination, fault));
    }
    script
}

/// An HTB class for traffic to `destination` (its rate the fault's cap, or
/// unlimited), with netem under it for delay.
fn shape_script(host: &Host, class: usize, destination: IpAddr, fault: &LinkFault) -> String {
    let p = host.privileged("");
    let rate = match fault.bandwidth_bytes_per_s {
        Some(bytes) => format!("{bytes}bps"),
        None => "10gbit".to_string(),
    };
    let mut script = format!(
        "dev=$(ip route get {destination} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p')\n\
         {p}tc qdisc show dev \"$dev\" | grep -q 'qdisc htb fa1: root' || {p}tc qdisc add dev \"$dev\" root handle fa1: htb\n\
         {p}tc class add dev \"$dev\" parent fa1: classid fa1:{class} htb rate {rate}\n"
    );
    if fault.delay_ms > 0 || fault.jitter_ms > 0 {
        script.push_str(&format!(
            "{p}tc qdisc add dev \"$dev\" parent fa1:{class} handle {}: netem delay {}ms {}ms\n",
            100 + class,
            fault.delay_ms,
            fault.jitter_ms
        ));
    }
    script.push_str(&format!(
        "{p}tc filter add dev \"$dev\" parent fa1: protocol ip prio 1 u32 match ip dst {destination}/32 flowid fa1:{class}\n"
    ));
    script
}

/// tc's answer when the kernel has no netem is "Specified qdisc kind is
/// unknown"; say what that means here.
fn explain_netem(mut error: HostError) -> HostError {
    if error.message.contains("qdisc kind is unknown") {
        error.message = "link-delay needs tc netem, and the host's kernel has no sch_netem (modprobe sch_netem, or leave link-delay out)".to_string();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::hosts::ssh::Ssh;

    fn addresses() -> Vec<IpAddr> {
        (0..3).map(|host| IpAddr::from([10, 254, 9, 10 + host])).collect()
    }

    fn host(sudo: bool) -> Host {
        Host {
            address: addresses()[0],
            ssh: Ssh::new("root@10.254.9.10".into(), Vec::new(), "/tmp/x.sock".into()),
            dir: "/tmp".into(),
            run_dir: "/tmp/r".into(),
            pids_dir: "/tmp/p".into(),
            sudo,
        }
    }

    #[test]
    fn a_receiver_drops_its_cut_off_senders_and_nothing_else() {
        let faults = NetFaults { grudge: [(0, [1, 0].into()), (2, [7].into())].into(), links: BTreeMap::new() };
        let rules = rules(&addresses(), &faults);
        assert_eq!(rules[0].blocked.keys().copied().collect::<Vec<_>>(), vec![addresses()[1]], "itself and unknown nodes ignored");
        assert!(rules[1].blocked.is_empty() && rules[2].blocked.is_empty());
    }

    #[test]
    fn links_block_at_the_receiver_and_shape_at_the_sender() {
        let slow = LinkFault { bandwidth_bytes_per_s: Some(1000), ..LinkFault::default() };
        let reset = LinkFault { reset: true, ..LinkFault::default() };
        let faults = NetFaults { grudge: Grudge::new(), links: [((0, 1), slow), ((2, 0), reset)].into() };
        let rules = rules(&addresses(), &faults);
        assert_eq!(rules[0].shaped.get(&addresses()[1]), Some(&slow), "the sender shapes its egress");
        assert_eq!(rules[0].blocked.get(&addresses()[2]), Some(&true), "the receiver resets");
        assert!(rules[1].shaped.is_empty() && rules[1].blocked.is_empty());
    }

    #[test]
    fn a_block_adds_rules_then_aborts_connections_and_sudo_prefixes_every_tool() {
        let mut blocked = HostRules::default();
        blocked.blocked.insert(addresses()[1], false);
        let script = host_script(&host(true), &blocked);
        let rule = script.find("iptables -A FAULTLINE -s 10.254.9.11 -j DROP").expect(&script);
        let abort = script.find("ss -H -K -t dst 10.254.9.11").expect(&script);
        assert!(rule < abort, "connections are aborted once they cannot re-form: {script}");
        for line in script.lines().filter(|line| line.contains("iptables") || line.contains("ss -H")) {
            assert!(line.trim_start().starts_with("sudo -n "), "{line}");
        }
        assert!(clean_script(&host(false)).contains("iptables -X FAULTLINE"));
    }

    #[test]
    fn a_delay_is_netem_under_an_htb_class_filtered_by_destination() {
        let delay = LinkFault { delay_ms: 40, jitter_ms: 5, ..LinkFault::default() };
        let script = shape_script(&host(false), 2, addresses()[2], &delay);
        assert!(script.contains("classid fa1:2 htb rate 10gbit"), "{script}");
        assert!(script.contains("parent fa1:2 handle 102: netem delay 40ms 5ms"), "{script}");
        assert!(script.contains("match ip dst 10.254.9.12/32 flowid fa1:2"), "{script}");
    }
}
