//! The spec file as the user writes it: YAML read with serde-saphyr into
//! plain structs whose fields are exactly the spec's (unknown fields are
//! errors), with the defaults of the no-flag test. Nothing here checks a
//! value; `TestPlan::from_spec` does that once.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fields::SpecError;

/// The whole spec file. Every field is optional; defaults give the
/// no-flag test (5 nodes, 30 s, kill + pause + partition, kv).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpecFile {
    pub name: String,
    /// Drawn at random (and printed) when absent.
    pub seed: Option<u64>,
    /// Where results go: `<store>/<name>/<timestamp>/`.
    pub store: PathBuf,
    pub cluster: ClusterSpec,
    pub client: ClientSpec,
    pub workload: WorkloadSpec,
    pub nemesis: NemesisSpec,
    pub schedule: ScheduleSpec,
    pub checkers: CheckersSpec,
}

/// The cluster section. `system`, `nodes` and `ready_timeout` mean the same
/// for every system; every other field belongs to the system named, which
/// reads and checks them itself (`crate::systems`), so adding a system
/// never touches this struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSpec {
    /// The system under test: a name in the systems registry.
    pub system: String,
    pub nodes: usize,
    pub ready_timeout: String,
    /// Where the nodes run: absent, on this machine behind the proxy;
    /// a list of hosts reached over SSH; or `netns: N` namespaces here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostsSpec>,
    /// The system's own fields, as written (the validated plan keeps them
    /// with every default filled in, as the system read them).
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// `cluster.hosts`: namespaces of this machine, or real hosts. Read by
/// shape (a map with `netns`, or a list), so a mistake is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, try_from = "serde_json::Value")]
pub enum HostsSpec {
    Netns(NetnsSpec),
    Listed(Vec<HostSpec>),
}

impl TryFrom<serde_json::Value> for HostsSpec {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        let shape = "cluster.hosts is `netns: N` or a list of hosts (address, user, port, key, dir, sudo)";
        match value {
            serde_json::Value::Object(_) => serde_json::from_value(value).map(HostsSpec::Netns).map_err(|e| format!("{shape}: {e}")),
            serde_json::Value::Array(_) => serde_json::from_value(value).map(HostsSpec::Listed).map_err(|e| format!("{shape}: {e}")),
            _ => Err(shape.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsSpec {
    pub netns: usize,
}

/// One host: node i runs on the i-th.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// The IP address the other hosts reach it at.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// faultline's working directory there (default /tmp/faultline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Run iptables, ss and tc through `sudo -n`.
    #[serde(default)]
    pub sudo: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSpec {
    /// An operation without an answer by then is recorded as `info`.
    pub op_timeout: String,
    pub connect_timeout: String,
    /// Leader redirects (`not_leader`) followed within one operation.
    pub redirects_max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    pub kind: String,
    pub keys_active: u32,
    pub ops_per_key_max: u64,
    /// Transactions mixed into a single-key workload: `list-append` or
    /// `rw-register`, or `none`. A trailing `?` (`list-append?`) leaves
    /// them out of a run whose system has no transactional client, or
    /// whose workload runs transactions already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<String>,
    /// The share of operations those transactions take, in (0, 1)
    /// (default 0.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NemesisSpec {
    /// Fault names: families (`kill`, `pause`, `partition`, `link`), single
    /// faults (`kill-leader`, `partition-ring`, ...), `mix` or `none`.
    pub faults: Vec<String>,
    /// How long each fault lasts, drawn uniformly in [min, max].
    pub fault_duration_min: String,
    pub fault_duration_max: String,
    /// Quiet time between a heal and the next fault, in [min, max].
    pub heal_duration_min: String,
    pub heal_duration_max: String,
    /// Longer quiet times for some families, when they run beside others
    /// (`nemesis.concurrent`): family name → [min, max], each at least the
    /// spec's own. For faults that cost the cluster more than their length
    /// (an fsync error stops every correct node it reaches), or that need
    /// only a few a run.
    pub family_heal_durations: BTreeMap<String, [String; 2]>,
    /// Link faults: added latency, jitter, and the `link-slow` throughput cap.
    pub link_delay: String,
    pub link_jitter: String,
    pub link_bandwidth_bytes_per_s: u64,
    /// Corrupt faults: the files they may damage (a glob under each node's
    /// data dir) and how many bytes one fault flips, cuts or zeroes.
    pub corrupt_files: String,
    pub corrupt_bytes: u64,
    /// Disk faults: how long each read, write and fsync of a `disk-slow`
    /// node waits.
    pub disk_delay: String,
    /// Clock faults: the largest offset, how often a strobing (or
    /// drifting) clock moves, and whether the monotonic clock is faked too.
    pub clock_offset_max: String,
    pub clock_strobe_period: String,
    pub clock_fake_monotonic: bool,
    /// Each fault family on its own schedule, so faults of different
    /// families overlap (a partition while a node is down); otherwise one
    /// fault at a time.
    pub concurrent: bool,
    /// Share of faults aimed at the leader, drawn first, among the faults
    /// of the list that have a leader target; null: every fault of the
    /// list equally likely.
    pub leader_share: Option<f64>,
    /// Skip a fault that stops nodes one at a time (a kill, pause or power
    /// cut of one node or a minority, a single disk's error) when, beside
    /// nodes already down, it would leave fewer than a majority of the
    /// members running; the faults
    /// that take a majority on purpose (`kill-majority`,
    /// `power-loss-majority`, ...) still do.
    pub keep_majority_running: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSpec {
    pub time_limit: String,
    /// Operations per second over all clients.
    pub rate: f64,
    /// Client tasks (Jepsen processes) at once.
    pub concurrency: usize,
    /// Quiet time after the final heal before the final reads.
    pub recovery: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckersSpec {
    /// The cluster must serve a write within this bound after the final heal.
    pub liveness_timeout: String,
    /// Extra substrings that fail the run when found in a node log (the
    /// system's own patterns always apply).
    pub log_error_patterns: Vec<String>,
    /// Budget for the linearizability search; beyond it the verdict is unknown.
    pub check_timeout: String,
    /// Attempts per final read before it is given up.
    pub final_read_attempts_max: u32,
    /// How long the replicas may take to settle at one position before
    /// their digests are compared (systems that report digests).
    pub convergence_timeout: String,
    /// The consistency model transactions are checked against
    /// (transactional workloads): a history is invalid when it shows an
    /// anomaly the model forbids.
    pub consistency_model: String,
}

impl Default for SpecFile {
    fn default() -> Self {
        SpecFile {
            name: "faultline".to_string(),
            seed: None,
            store: PathBuf::from("store"),
            cluster: ClusterSpec::default(),
            client: ClientSpec::default(),
            // The no-flag test mixes in transactions where the system runs
            // them; a spec that writes its own workload section gets only
            // what it names.
            workload: WorkloadSpec {
                transactions: Some("list-append?".to_string()),
                transactions_share: Some(super::TRANSACTIONS_SHARE_DEFAULT),
                ..WorkloadSpec::default()
            },
            nemesis: NemesisSpec::default(),
            schedule: ScheduleSpec::default(),
            checkers: CheckersSpec::default(),
        }
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            system: crate::systems::registry::DEFAULT.name.to_string(),
            nodes: 5,
            ready_timeout: "10s".to_string(),
            hosts: None,
            options: serde_json::Map::new(),
        }
    }
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec { op_timeout: "1s".to_string(), connect_timeout: "500ms".to_string(), redirects_max: 3 }
    }
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec { kind: "kv".to_string(), keys_active: 4, ops_per_key_max: 100, transactions: None, transactions_share: None }
    }
}

/// The no-flag test's faults (`ci/default.yaml` writes them out; a plan
/// test keeps the two the same).
const DEFAULT_FAULTS: [&str; 10] = [
    "kill",
    "pause",
    "partition",
    "power-loss?",
    "clock-isolate-leader?",
    "revote-power-loss?",
    "membership-race?",
    "membership-add-minority?",
    "corrupt-bitflip?",
    "disk-fsync-eio-majority?",
];

impl Default for NemesisSpec {
    fn default() -> Self {
        NemesisSpec {
            faults: DEFAULT_FAULTS.map(String::from).to_vec(),
            fault_duration_min: "300ms".to_string(),
            fault_duration_max: "3s".to_string(),
            heal_duration_min: "200ms".to_string(),
            heal_duration_max: "2s".to_string(),
            family_heal_durations: BTreeMap::from([
                ("corrupt".to_string(), ["3s".to_string(), "6s".to_string()]),
                ("disk".to_string(), ["8s".to_string(), "14s".to_string()]),
            ]),
            link_delay: "50ms".to_string(),
            link_jitter: "50ms".to_string(),
            link_bandwidth_bytes_per_s: 2_000,
            corrupt_files: "**/*".to_string(),
            corrupt_bytes: 1,
            disk_delay: "10ms".to_string(),
            clock_offset_max: "10s".to_string(),
            clock_strobe_period: "200ms".to_string(),
            clock_fake_monotonic: true,
            concurrent: true,
            leader_share: Some(0.5),
            keep_majority_running: true,
        }
    }
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec { time_limit: "30s".to_string(), rate: 200.0, concurrency: 10, recovery: "3s".to_string() }
    }
}

impl Default for CheckersSpec {
    fn default() -> Self {
        CheckersSpec {
            liveness_timeout: "10s".to_string(),
            log_error_patterns: Vec::new(),
            check_timeout: "10s".to_string(),
            final_read_attempts_max: 5,
            convergence_timeout: "10s".to_string(),
            consistency_model: "strict-serializable".to_string(),
        }
    }
}

impl SpecFile {
    /// Parse a spec from YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<SpecFile, SpecError> {
        if text.trim().is_empty() {
            return Ok(SpecFile::default());
        }
        serde_saphyr::from_str(text)
            .map_err(|error| SpecError::Parse { path: origin.to_string(), message: one_line(&error.to_string()) })
    }

    /// `cluster.node_binary`: a field of the system's own (faultline-node,
    /// etcd), which the system reads, or refuses.
    pub fn set_node_binary(&mut self, binary: &std::path::Path) {
        self.cluster.options.insert("node_binary".into(), binary.display().to_string().into());
    }

    pub fn read(path: &std::path::Path) -> Result<SpecFile, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        SpecFile::from_yaml(&text, &path.display().to_string())
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_saphyr::to_string(self).unwrap_or_else(|error| format!("# spec not serializable: {error}\n"))
    }
}

/// Error text on one line: serde-saphyr adds a source snippet below.
pub(super) fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).take(2).collect::<Vec<_>>().join(": ")
}
