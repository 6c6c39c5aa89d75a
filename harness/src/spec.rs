//! A test as data: the spec file (YAML), flag overrides, and the validated
//! `TestPlan` the runner executes.
//!
//! Two stages, as in ripgrep's LowArgs/HiArgs: `SpecFile` mirrors the YAML
//! exactly (unknown fields are errors), overrides from flags are applied to
//! it, and `TestPlan::from_spec` checks every value and combination once,
//! before anything starts. The resolved `SpecFile` (seed filled in) is what
//! the results folder saves as `spec.yaml`, so a run can be replayed from it.
use std::path::PathBuf;

use faultline_workloads::{WorkloadConfig, WorkloadKind};
use serde::{Deserialize, Serialize};

use crate::cluster::generic::GenericSpec;
use crate::nemesis::{Fault, FaultFamily};

/// Bad input: reported as one line, exit code 3, before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("spec {path}: {message}")]
    Parse { path: String, message: String },
    #[error("bad value for {field}: {message}")]
    Value { field: String, message: String },
    #[error("impossible combination: {0}")]
    Combination(String),
}

fn value_error(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::Value { field: field.to_string(), message: message.into() }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// The system under test: faultline-node, etcd, redis-sentinel or
    /// generic (described by `generic`).
    pub system: String,
    pub nodes: usize,
    /// Path of the node binary; found next to `faultline` when absent.
    pub node_binary: Option<PathBuf>,
    pub ready_timeout: String,
    pub election_timeout: Option<String>,
    pub heartbeat_interval: Option<String>,
    /// Extra arguments for every node launch.
    pub node_args: Vec<String>,
    /// faultline-node only: replication mode (`raft`, `sync`, `semi-sync`,
    /// `async`); raft when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// faultline-node only: planted bugs to switch on (cluster-node/README.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
    /// How to run a `system: generic` (commands and client protocol).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericSpec>,
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
    /// Link faults: added latency, jitter, and the `link-slow` throughput cap.
    pub link_delay: String,
    pub link_jitter: String,
    pub link_bandwidth_bytes_per_s: u64,
    /// Each fault family on its own schedule, so faults of different
    /// families overlap (a partition while a node is down); otherwise one
    /// fault at a time.
    pub concurrent: bool,
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
}

impl Default for SpecFile {
    fn default() -> Self {
        SpecFile {
            name: "faultline".to_string(),
            seed: None,
            store: PathBuf::from("store"),
            cluster: ClusterSpec::default(),
            client: ClientSpec::default(),
            workload: WorkloadSpec::default(),
            nemesis: NemesisSpec::default(),
            schedule: ScheduleSpec::default(),
            checkers: CheckersSpec::default(),
        }
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            system: "faultline-node".to_string(),
            nodes: 5,
            node_binary: None,
            ready_timeout: "10s".to_string(),
            election_timeout: None,
            heartbeat_interval: None,
            node_args: Vec::new(),
            mode: None,
            bugs: Vec::new(),
            generic: None,
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
        WorkloadSpec { kind: "kv".to_string(), keys_active: 4, ops_per_key_max: 100 }
    }
}

impl Default for NemesisSpec {
    fn default() -> Self {
        NemesisSpec {
            faults: vec!["kill".to_string(), "pause".to_string(), "partition".to_string()],
            fault_duration_min: "2s".to_string(),
            fault_duration_max: "4s".to_string(),
            heal_duration_min: "1s".to_string(),
            heal_duration_max: "3s".to_string(),
            link_delay: "50ms".to_string(),
            link_jitter: "50ms".to_string(),
            link_bandwidth_bytes_per_s: 2_000,
            concurrent: false,
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

    pub fn read(path: &std::path::Path) -> Result<SpecFile, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        SpecFile::from_yaml(&text, &path.display().to_string())
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_saphyr::to_string(self).unwrap_or_else(|error| format!("# spec not serializable: {error}\n"))
    }

    /// Apply `path=value` overrides (`cluster.nodes=3`); the value is read as
    /// YAML, so `nemesis.faults=[kill, pause]` works too.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<SpecFile, SpecError> {
        let mut tree = serde_json::to_value(self).map_err(|e| value_error("spec", e.to_string()))?;
        for (path, text) in overrides {
            let value: serde_json::Value = serde_saphyr::from_str(text)
                .map_err(|error| value_error(path, one_line(&error.to_string())))?;
            set_path(&mut tree, path, value)?;
        }
        serde_json::from_value(tree).map_err(|error| SpecError::Parse {
            path: "overrides".to_string(),
            message: one_line(&error.to_string()),
        })
    }
}

/// Set `path` (`cluster.nodes`) in the spec's JSON tree. Sections that are
/// absent (optional ones such as `cluster.generic`) are created; whether a
/// field exists at all is decided when the tree is read back as a spec,
/// which refuses unknown fields.
fn set_path(tree: &mut serde_json::Value, path: &str, value: serde_json::Value) -> Result<(), SpecError> {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(value_error(path, "empty field name in the path"));
    }
    for (index, part) in parts.iter().enumerate() {
        let object = node
            .as_object_mut()
            .ok_or_else(|| value_error(path, format!("{part:?} is not inside a section")))?;
        if index + 1 == parts.len() {
            object.insert(part.to_string(), value);
            return Ok(());
        }
        let child = object.entry(part.to_string()).or_insert(serde_json::Value::Null);
        if child.is_null() {
            *child = serde_json::Value::Object(serde_json::Map::new());
        }
        node = child;
    }
    Err(value_error(path, "empty field path"))
}

/// Error text on one line: serde-saphyr adds a source snippet below.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).take(2).collect::<Vec<_>>().join(": ")
}

/// Parse `250ms`, `30s`, `2m`, `1.5s` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s or 2m"))?;
    let scale_ms = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "" => return Err(format!("{text:?} needs a unit (ms, s or m)")),
        other => return Err(format!("unknown unit {other:?} in {text:?} (use ms, s or m)")),
    };
    let ms = number * scale_ms;
    if !ms.is_finite() || ms > 1e12 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(ms.round() as u64)
}

fn duration_field(field: &str, text: &str) -> Result<u64, SpecError> {
    parse_duration_ms(text).map_err(|message| value_error(field, message))
}

/// The validated test: everything the runner needs, limits in named units.
#[derive(Debug, Clone)]
pub struct TestPlan {
    pub system: System,
    pub name: String,
    pub seed: u64,
    pub store_dir: PathBuf,
    pub nodes: usize,
    pub node_binary: Option<PathBuf>,
    pub node_args: Vec<String>,
    pub ready_timeout_ms: u64,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub op_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub redirects_max: u32,
    pub workload: WorkloadConfig,
    pub faults: Vec<Fault>,
    pub fault_duration_ms_min: u64,
    pub fault_duration_ms_max: u64,
    pub heal_duration_ms_min: u64,
    pub heal_duration_ms_max: u64,
    pub link_delay_ms: u64,
    pub link_jitter_ms: u64,
    pub link_bandwidth_bytes_per_s: u64,
    /// One schedule per fault family, overlapping (`nemesis.concurrent`).
    pub nemesis_concurrent: bool,
    pub time_limit_ms: u64,
    pub rate_per_s: f64,
    pub concurrency: usize,
    pub recovery_ms: u64,
    pub liveness_timeout_ms: u64,
    pub log_error_patterns: Vec<String>,
    pub check_timeout_ms: u64,
    pub final_read_attempts_max: u32,
    /// The spec as resolved (seed filled in), saved as `spec.yaml`.
    pub resolved: SpecFile,
}

/// Upper bounds that keep a typo from starting a runaway test.
const NODES_MAX: usize = 15;
const CONCURRENCY_MAX: usize = 1_000;
const RATE_PER_S_MAX: f64 = 100_000.0;
const KEYS_ACTIVE_MAX: u32 = 10_000;

impl TestPlan {
    /// Validate every field and combination; `seed_fallback` is used when
    /// the spec has no seed.
    pub fn from_spec(spec: &SpecFile, seed_fallback: u64) -> Result<TestPlan, SpecError> {
        let mut resolved = spec.clone();
        let seed = *resolved.seed.get_or_insert(seed_fallback);
        check_name(&spec.name)?;
        let cluster = &spec.cluster;
        let system = system(cluster)?;
        let node_args = node_args(cluster, &system)?;
        if cluster.nodes == 0 || cluster.nodes > NODES_MAX {
            return Err(value_error("cluster.nodes", format!("{} is not in 1..={NODES_MAX}", cluster.nodes)));
        }
        let workload = workload_config(&spec.workload)?;
        let faults = faults(&spec.nemesis, cluster.nodes)?;
        let schedule = &spec.schedule;
        if schedule.concurrency == 0 || schedule.concurrency > CONCURRENCY_MAX {
            return Err(value_error(
                "schedule.concurrency",
                format!("{} is not in 1..={CONCURRENCY_MAX}", schedule.concurrency),
            ));
        }
        if !(schedule.rate > 0.0 && schedule.rate <= RATE_PER_S_MAX) {
            return Err(value_error("schedule.rate", format!("{} is not in (0, {RATE_PER_S_MAX}]", schedule.rate)));
        }
        let plan = TestPlan {
            system,
            name: spec.name.clone(),
            seed,
            store_dir: spec.store.clone(),
            nodes: cluster.nodes,
            node_binary: cluster.node_binary.clone(),
            node_args,
            ready_timeout_ms: positive("cluster.ready_timeout", &cluster.ready_timeout)?,
            election_timeout_ms: optional("cluster.election_timeout", &cluster.election_timeout)?,
            heartbeat_interval_ms: optional("cluster.heartbeat_interval", &cluster.heartbeat_interval)?,
            op_timeout_ms: positive("client.op_timeout", &spec.client.op_timeout)?,
            connect_timeout_ms: positive("client.connect_timeout", &spec.client.connect_timeout)?,
            redirects_max: spec.client.redirects_max,
            workload,
            faults,
            fault_duration_ms_min: positive("nemesis.fault_duration_min", &spec.nemesis.fault_duration_min)?,
            fault_duration_ms_max: positive("nemesis.fault_duration_max", &spec.nemesis.fault_duration_max)?,
            heal_duration_ms_min: positive("nemesis.heal_duration_min", &spec.nemesis.heal_duration_min)?,
            heal_duration_ms_max: positive("nemesis.heal_duration_max", &spec.nemesis.heal_duration_max)?,
            link_delay_ms: duration_field("nemesis.link_delay", &spec.nemesis.link_delay)?,
            link_jitter_ms: duration_field("nemesis.link_jitter", &spec.nemesis.link_jitter)?,
            link_bandwidth_bytes_per_s: spec.nemesis.link_bandwidth_bytes_per_s,
            nemesis_concurrent: spec.nemesis.concurrent,
            time_limit_ms: positive("schedule.time_limit", &schedule.time_limit)?,
            rate_per_s: schedule.rate,
            concurrency: schedule.concurrency,
            recovery_ms: duration_field("schedule.recovery", &schedule.recovery)?,
            liveness_timeout_ms: positive("checkers.liveness_timeout", &spec.checkers.liveness_timeout)?,
            log_error_patterns: spec.checkers.log_error_patterns.clone(),
            check_timeout_ms: positive("checkers.check_timeout", &spec.checkers.check_timeout)?,
            final_read_attempts_max: spec.checkers.final_read_attempts_max,
            resolved,
        };
        plan.check_combinations()?;
        Ok(plan)
    }

    fn check_combinations(&self) -> Result<(), SpecError> {
        if self.fault_duration_ms_min > self.fault_duration_ms_max {
            return Err(SpecError::Combination(
                "nemesis.fault_duration_min is above nemesis.fault_duration_max".to_string(),
            ));
        }
        if self.heal_duration_ms_min > self.heal_duration_ms_max {
            return Err(SpecError::Combination(
                "nemesis.heal_duration_min is above nemesis.heal_duration_max".to_string(),
            ));
        }
        if self.final_read_attempts_max == 0 {
            return Err(value_error("checkers.final_read_attempts_max", "must be at least 1"));
        }
        if let (Some(heartbeat), Some(election)) = (self.heartbeat_interval_ms, self.election_timeout_ms) {
            if heartbeat >= election {
                return Err(SpecError::Combination(format!(
                    "cluster.heartbeat_interval ({heartbeat} ms) must be below cluster.election_timeout ({election} ms)"
                )));
            }
        }
        let families = |family: FaultFamily| self.faults.iter().any(|fault| fault.family() == family);
        let scripted = self.faults.iter().any(|fault| fault.is_scripted());
        if self.nemesis_concurrent && scripted && (families(FaultFamily::Partition) || families(FaultFamily::Link)) {
            return Err(SpecError::Combination(
                "nemeses revote and figure-8 set the whole network themselves: with nemesis.concurrent they cannot run beside partition or link faults".to_string(),
            ));
        }
        if self.op_timeout_ms >= self.time_limit_ms {
            return Err(SpecError::Combination(format!(
                "client.op_timeout ({} ms) must be below schedule.time_limit ({} ms)",
                self.op_timeout_ms, self.time_limit_ms
            )));
        }
        Ok(())
    }

    /// Nanoseconds between operations over all clients.
    pub fn gap_mean_ns(&self) -> u64 {
        (1e9 / self.rate_per_s) as u64
    }
}

/// The system under test, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum System {
    FaultlineNode,
    Etcd,
    RedisSentinel,
    Generic(GenericSpec),
}

fn system(cluster: &ClusterSpec) -> Result<System, SpecError> {
    let system = match cluster.system.as_str() {
        "faultline-node" => System::FaultlineNode,
        "etcd" => System::Etcd,
        "redis-sentinel" => System::RedisSentinel,
        "generic" => {
            let generic = cluster.generic.clone().ok_or_else(|| {
                value_error("cluster.generic", "system: generic needs a cluster.generic section (start, client, ...)")
            })?;
            generic.validate().map_err(|(field, message)| value_error(&field, message))?;
            return Ok(System::Generic(generic));
        }
        other => {
            return Err(value_error(
                "cluster.system",
                format!("{other:?} is not a known system (faultline-node, etcd, redis-sentinel, generic)"),
            ))
        }
    };
    if cluster.generic.is_some() {
        return Err(value_error("cluster.generic", format!("is only used with system: generic, not {:?}", cluster.system)));
    }
    refuse_unused_fields(cluster, &system)?;
    Ok(system)
}

/// A field the chosen system would silently ignore is an error: the user
/// meant it to do something.
fn refuse_unused_fields(cluster: &ClusterSpec, system: &System) -> Result<(), SpecError> {
    let unused: &[(&str, bool)] = match system {
        System::FaultlineNode | System::Etcd => &[],
        System::RedisSentinel => &[
            ("cluster.node_binary", cluster.node_binary.is_some()),
            ("cluster.heartbeat_interval", cluster.heartbeat_interval.is_some()),
            ("cluster.node_args", !cluster.node_args.is_empty()),
        ],
        System::Generic(_) => &[
            ("cluster.node_binary", cluster.node_binary.is_some()),
            ("cluster.election_timeout", cluster.election_timeout.is_some()),
            ("cluster.heartbeat_interval", cluster.heartbeat_interval.is_some()),
            ("cluster.node_args", !cluster.node_args.is_empty()),
        ],
    };
    match unused.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(value_error(field, format!("is not used by system {:?}; remove it", cluster.system))),
        None => Ok(()),
    }
}

/// The node flags of the spec: `--mode`/`--bugs` from `cluster.mode` and
/// `cluster.bugs` (faultline-node only, checked here), then `node_args`.
fn node_args(cluster: &ClusterSpec, system: &System) -> Result<Vec<String>, SpecError> {
    let mut args = Vec::new();
    let node_only = |field: &str| {
        value_error(field, format!("only applies to system faultline-node, not {:?}", cluster.system))
    };
    if let Some(mode) = &cluster.mode {
        if *system != System::FaultlineNode {
            return Err(node_only("cluster.mode"));
        }
        faultline_node::mode::Mode::parse(mode).map_err(|error| value_error("cluster.mode", error.to_string()))?;
        args.extend(["--mode".to_string(), mode.trim().to_string()]);
    }
    if !cluster.bugs.is_empty() {
        if *system != System::FaultlineNode {
            return Err(node_only("cluster.bugs"));
        }
        let list = cluster.bugs.join(",");
        faultline_node::bugs::Bugs::parse(&list).map_err(|error| value_error("cluster.bugs", error.to_string()))?;
        args.extend(["--bugs".to_string(), list]);
    }
    args.extend(cluster.node_args.iter().cloned());
    Ok(args)
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(value_error("name", format!("{name:?} must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'")))
    }
}

fn positive(field: &str, text: &str) -> Result<u64, SpecError> {
    let ms = duration_field(field, text)?;
    if ms == 0 {
        return Err(value_error(field, "must be longer than 0"));
    }
    Ok(ms)
}

fn optional(field: &str, text: &Option<String>) -> Result<Option<u64>, SpecError> {
    text.as_deref().map(|text| positive(field, text)).transpose()
}

fn workload_config(spec: &WorkloadSpec) -> Result<WorkloadConfig, SpecError> {
    let kind: WorkloadKind = spec.kind.parse().map_err(|e: faultline_workloads::UnknownWorkload| value_error("workload.kind", e.to_string()))?;
    if spec.keys_active == 0 || spec.keys_active > KEYS_ACTIVE_MAX {
        return Err(value_error("workload.keys_active", format!("{} is not in 1..={KEYS_ACTIVE_MAX}", spec.keys_active)));
    }
    if spec.ops_per_key_max == 0 {
        return Err(value_error("workload.ops_per_key_max", "must be at least 1"));
    }
    Ok(WorkloadConfig { kind, keys_active: spec.keys_active, ops_per_key_max: spec.ops_per_key_max })
}

fn faults(spec: &NemesisSpec, nodes: usize) -> Result<Vec<Fault>, SpecError> {
    let mut faults: Vec<Fault> = Vec::new();
    for name in &spec.faults {
        let expanded = Fault::parse_name(name).map_err(|message| value_error("nemesis.faults", message))?;
        let single = expanded.len() == 1;
        let fitting: Vec<Fault> = expanded.iter().copied().filter(|f| nodes >= f.nodes_min()).collect();
        // A family keeps the members that fit the cluster; a fault named on
        // its own must fit.
        if fitting.is_empty() && !expanded.is_empty() || single && fitting.len() != 1 {
            let fault = expanded[0];
            return Err(SpecError::Combination(format!(
                "nemesis {name} needs at least {} nodes, the cluster has {nodes}",
                fault.nodes_min()
            )));
        }
        for fault in fitting {
            if !faults.contains(&fault) {
                faults.push(fault);
            }
        }
    }
    let odd = nodes % 2 == 1;
    if let Some(scenario) = faults.iter().find(|fault| fault.is_scripted()).filter(|_| !odd) {
        return Err(SpecError::Combination(format!(
            "nemesis {scenario} needs an odd cluster size (two majorities that share one voter), the cluster has {nodes}"
        )));
    }
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert!(parse_duration_ms("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration_ms("3h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration_ms("fast").is_err());
    }

    #[test]
    fn the_default_plan_is_the_no_flag_test() {
        let plan = TestPlan::from_spec(&SpecFile::default(), 5).unwrap();
        assert_eq!(plan.seed, 5);
        assert_eq!(plan.resolved.seed, Some(5), "the resolved spec records the seed");
        assert_eq!(plan.nodes, 5);
        assert_eq!(plan.time_limit_ms, 30_000);
        assert_eq!(plan.workload.kind, WorkloadKind::Kv);
        let families: std::collections::BTreeSet<_> = plan.faults.iter().map(|f| f.family()).collect();
        assert_eq!(families.len(), 3, "kill, pause and partition");
        assert_eq!(plan.gap_mean_ns(), 5_000_000, "200 ops/s");
    }

    #[test]
    fn overrides_reach_nested_fields_and_refuse_unknown_ones() {
        let overrides = vec![
            ("cluster.nodes".to_string(), "3".to_string()),
            ("nemesis.faults".to_string(), "[pause, link-drop]".to_string()),
            ("seed".to_string(), "11".to_string()),
        ];
        let spec = SpecFile::default().with_overrides(&overrides).unwrap();
        assert_eq!(spec.cluster.nodes, 3);
        assert_eq!(spec.nemesis.faults, ["pause", "link-drop"]);
        assert_eq!(spec.seed, Some(11));
        let unknown = SpecFile::default().with_overrides(&[("cluster.colour".to_string(), "red".to_string())]);
        assert!(unknown.unwrap_err().to_string().contains("unknown field `colour`"));
        let generic = [("cluster.generic.start", "exec x"), ("cluster.generic.client", "external"), ("cluster.generic.ready", "test -e x")]
            .map(|(path, value)| (path.to_string(), value.to_string()));
        let section = SpecFile::default().with_overrides(&generic).unwrap();
        let set = section.cluster.generic.expect("an absent optional section is created");
        assert_eq!((set.start.as_str(), set.ready.as_deref()), ("exec x", Some("test -e x")));
        let typed = SpecFile::default().with_overrides(&[("cluster.nodes".to_string(), "many".to_string())]);
        assert!(typed.is_err());
    }

    #[test]
    fn fields_a_system_would_ignore_are_refused() {
        let mut spec = SpecFile::default();
        spec.cluster.system = "redis-sentinel".to_string();
        spec.cluster.node_args = vec!["--x".to_string()];
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("cluster.node_args") && error.contains("not used by system"), "{error}");
        spec.cluster.node_args.clear();
        spec.cluster.election_timeout = Some("1s".to_string());
        assert!(TestPlan::from_spec(&spec, 0).is_ok(), "sentinel's down-after comes from election_timeout");
    }

    #[test]
    fn mode_and_bugs_become_node_flags_and_are_checked() {
        let mut spec = SpecFile::default();
        spec.cluster.mode = Some("async".to_string());
        spec.cluster.bugs = vec!["stale-read".to_string(), "no-fsync".to_string()];
        let plan = TestPlan::from_spec(&spec, 0).unwrap();
        assert_eq!(plan.node_args, ["--mode", "async", "--bugs", "stale-read,no-fsync"]);
        spec.cluster.bugs = vec!["explode".to_string()];
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("cluster.bugs") && error.contains("unknown bug `explode`"), "{error}");
        spec.cluster.bugs.clear();
        spec.cluster.mode = Some("quorum".to_string());
        assert!(TestPlan::from_spec(&spec, 0).unwrap_err().to_string().contains("cluster.mode"));
        spec.cluster.mode = Some("sync".to_string());
        spec.cluster.system = "etcd".to_string();
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("only applies to system faultline-node"), "{error}");
    }

    #[test]
    fn a_family_keeps_what_fits_a_small_cluster() {
        let mut spec = SpecFile::default();
        spec.cluster.nodes = 2;
        spec.nemesis.faults = vec!["kill".to_string(), "partition".to_string()];
        let plan = TestPlan::from_spec(&spec, 0).unwrap();
        assert!(plan.faults.iter().all(|fault| fault.nodes_min() <= 2), "{:?}", plan.faults);
        assert!(plan.faults.contains(&Fault::Kill(crate::nemesis::KillTarget::Leader)));
        spec.nemesis.faults = vec!["partition-ring".to_string()];
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("needs at least 3 nodes"), "{error}");
    }

    #[test]
    fn scripted_scenarios_need_an_odd_cluster_and_the_network_to_itself() {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["revote".to_string()];
        for nodes in [3, 5] {
            spec.cluster.nodes = nodes;
            assert_eq!(TestPlan::from_spec(&spec, 0).unwrap().faults, [Fault::Revote]);
        }
        spec.cluster.nodes = 4;
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("odd cluster size") && error.contains("has 4"), "{error}");
        spec.cluster.nodes = 5;
        spec.nemesis.faults = vec!["revote".to_string(), "kill".to_string(), "link-delay".to_string()];
        assert!(TestPlan::from_spec(&spec, 0).is_ok(), "one fault at a time shares the network");
        spec.nemesis.concurrent = true;
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("cannot run beside partition or link"), "{error}");
        spec.nemesis.faults = vec!["revote".to_string(), "kill".to_string()];
        assert!(TestPlan::from_spec(&spec, 0).is_ok());
        spec.nemesis.faults = vec!["mix".to_string()];
        assert!(!TestPlan::from_spec(&spec, 0).unwrap().faults.contains(&Fault::Revote), "mix leaves revote out");
        spec.nemesis.faults = vec!["figure-8".to_string(), "partition".to_string()];
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("cannot run beside partition or link"), "{error}");
        spec.nemesis.concurrent = false;
        spec.cluster.nodes = 4;
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("nemesis figure-8 needs an odd cluster size"), "{error}");
    }

    #[test]
    fn yaml_round_trips() {
        let spec = SpecFile::from_yaml("name: x\nseed: 3\nworkload:\n  kind: set\n", "test").unwrap();
        let again = SpecFile::from_yaml(&spec.to_yaml(), "again").unwrap();
        assert_eq!(spec, again);
        let error = SpecFile::from_yaml("workload:\n  kind: set\n  size: 3\n", "test").unwrap_err().to_string();
        assert!(error.contains("unknown field `size`") && !error.contains('\n'), "{error}");
    }
}
