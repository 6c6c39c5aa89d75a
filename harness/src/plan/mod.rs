//! A test as data: the spec file (YAML), flag overrides, and the validated
//! `TestPlan` the runner executes.
//!
//! Two stages, as in ripgrep's LowArgs/HiArgs: [`SpecFile`] mirrors the
//! YAML exactly (unknown fields are errors), overrides from flags are
//! applied to it, and [`TestPlan::from_spec`] checks every value and
//! combination once, before anything starts. The plan is made of one typed
//! section per part of the test, each read by the part that uses it. The
//! resolved `SpecFile` (seed filled in, the system's fields with their
//! defaults) is what the results folder saves as `spec.yaml`, so a run can
//! be replayed from it.
use std::path::PathBuf;
use std::sync::Arc;

use faultline_checkers::txn::{ConsistencyModel, UnknownConsistencyModel};

use crate::nemesis::FamilySettings;
use crate::cluster::{HostConfig, HostsConfig, NETNS_MAX};
use crate::nemesis::recorded::RecordedSchedule;
use crate::nemesis::{Fault, FaultFamily, NemesisFactory, TargetsBy};
use crate::systems::{Configured, System};

mod nemesis;
mod overrides;
mod spec;
mod workload;

pub use crate::fields::SpecError;
pub(crate) use nemesis::scripted_fits;
use crate::fields::{duration, positive_duration};
pub use workload::{GeneratorFactory, LivenessWrite, WorkloadPlan, TRANSACTIONS_SHARE_DEFAULT};
use workload::workload_plan;
pub use spec::{CheckersSpec, ClientSpec, ClusterSpec, HostSpec, HostsSpec, NemesisSpec, NetnsSpec, ScheduleSpec, SpecFile, WorkloadSpec};

/// The validated test: everything the runner needs, limits in named units.
#[derive(Debug, Clone)]
pub struct TestPlan {
    pub name: String,
    pub seed: u64,
    pub store_dir: PathBuf,
    pub cluster: ClusterPlan,
    pub client: ClientPlan,
    pub workload: WorkloadPlan,
    pub nemesis: NemesisPlan,
    pub schedule: SchedulePlan,
    pub checks: ChecksPlan,
    /// The spec as resolved (seed filled in), saved as `spec.yaml`.
    pub resolved: SpecFile,
}

#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub system: Arc<dyn System>,
    pub nodes: usize,
    /// Bound on one node becoming ready (start, restart).
    pub ready_timeout_ms: u64,
    /// The hosts node i runs on (None: this machine, behind the proxy).
    pub hosts: Option<HostsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub op_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub redirects_max: u32,
}

/// Quiet-time ranges (min, max in ms) by fault family.
pub type FamilyHealMs = Vec<(FaultFamily, (u64, u64))>;

#[derive(Clone)]
pub struct NemesisPlan {
    pub faults: Vec<Fault>,
    pub fault_duration_ms_min: u64,
    pub fault_duration_ms_max: u64,
    pub heal_duration_ms_min: u64,
    pub heal_duration_ms_max: u64,
    /// Longer quiet times for these families beside others
    /// (`nemesis.family_heal_durations`).
    pub family_heal_ms: FamilyHealMs,
    /// The link and corrupt families' settings.
    pub settings: FamilySettings,
    /// One schedule per fault family, overlapping (`nemesis.concurrent`).
    pub concurrent: bool,
    /// Faults named with a trailing `?` (`power-loss?`): left out, with a
    /// warning, on a machine that cannot inject them.
    pub optional: Vec<Fault>,
    /// Share of the faults aimed at the leader (`nemesis.leader_share`).
    pub leader_share: Option<f64>,
    /// Single-node faults never leave fewer than a majority running
    /// (`nemesis.keep_majority_running`).
    pub keep_majority_running: bool,
    /// Nemeses of your own (the Rust API), for the custom faults in `faults`.
    pub custom: Vec<NemesisFactory>,
    /// A schedule to follow instead of drawing one (`--schedule`), and how
    /// its targets are aimed.
    pub recorded: Option<(RecordedSchedule, TargetsBy)>,
}

impl NemesisPlan {
    /// Whether the nemesis adds or removes nodes: the run then keeps a
    /// spare slot and asks the system for its members before convergence.
    pub fn changes_membership(&self) -> bool {
        self.faults.iter().any(|fault| fault.family() == FaultFamily::Membership)
    }
}

impl std::fmt::Debug for NemesisPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NemesisPlan")
            .field("faults", &self.faults)
            .field("fault_duration_ms", &(self.fault_duration_ms_min, self.fault_duration_ms_max))
            .field("heal_duration_ms", &(self.heal_duration_ms_min, self.heal_duration_ms_max))
            .field("family_heal_ms", &self.family_heal_ms)
            .field("settings", &self.settings)
            .field("concurrent", &self.concurrent)
            .field("leader_share", &self.leader_share)
            .field("keep_majority_running", &self.keep_majority_running)
            .field("custom", &self.custom.len())
            .field("recorded", &self.recorded.as_ref().map(|(schedule, by)| (&schedule.path, schedule.events.len(), by)))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulePlan {
    pub time_limit_ms: u64,
    pub rate_per_s: f64,
    pub concurrency: usize,
    pub recovery_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksPlan {
    pub liveness_timeout_ms: u64,
    pub log_error_patterns: Vec<String>,
    pub check_timeout_ms: u64,
    pub final_read_attempts_max: u32,
    pub convergence_timeout_ms: u64,
    pub consistency_model: ConsistencyModel,
}

/// Upper bounds that keep a typo from starting a runaway test.
const NODES_MAX: usize = 15;
const CONCURRENCY_MAX: usize = 1_000;
const RATE_PER_S_MAX: f64 = 100_000.0;

impl TestPlan {
    /// Validate every field and combination; `seed_fallback` is used when
    /// the spec has no seed.
    pub fn from_spec(spec: &SpecFile, seed_fallback: u64) -> Result<TestPlan, SpecError> {
        TestPlan::build(spec, seed_fallback, None)
    }

    /// Like [`TestPlan::from_spec`], for a system given in code (the Rust
    /// API) instead of named in `cluster.system`: the spec's cluster
    /// section then holds only `nodes` and `ready_timeout`.
    pub fn with_system(spec: &SpecFile, seed_fallback: u64, system: Arc<dyn System>) -> Result<TestPlan, SpecError> {
        TestPlan::build(spec, seed_fallback, Some(system))
    }

    fn build(spec: &SpecFile, seed_fallback: u64, system: Option<Arc<dyn System>>) -> Result<TestPlan, SpecError> {
        let mut resolved = spec.clone();
        let seed = *resolved.seed.get_or_insert(seed_fallback);
        check_name(&spec.name)?;
        let (cluster, options) = cluster_plan(&spec.cluster, system)?;
        resolved.cluster.system = cluster.system.name().to_string();
        resolved.cluster.options = options;
        let plan = TestPlan {
            name: spec.name.clone(),
            seed,
            store_dir: spec.store.clone(),
            nemesis: nemesis::plan(&spec.nemesis, &cluster)?,
            cluster,
            client: client_plan(&spec.client)?,
            workload: workload_plan(&spec.workload)?,
            schedule: schedule_plan(&spec.schedule)?,
            checks: checks_plan(&spec.checkers)?,
            resolved,
        };
        plan.check_combinations()?;
        Ok(plan)
    }

    fn check_combinations(&self) -> Result<(), SpecError> {
        let transactions = self.cluster.system.capabilities().transactions;
        if self.workload.config.kind.is_transactional() && !transactions {
            return Err(SpecError::Combination(format!(
                "workload {} runs transactions, and system {} has no transactional client (Capabilities::transactions)",
                self.workload_name(),
                self.cluster.system.name()
            )));
        }
        if let (Some(share), false, false) = (self.workload.config.transactions, self.workload.transactions_optional, transactions) {
            return Err(SpecError::Combination(format!(
                "workload.transactions mixes in {} transactions, and system {} has no transactional client (Capabilities::transactions; `{}?` leaves them out)",
                share.kind,
                self.cluster.system.name(),
                share.kind
            )));
        }
        if self.client.op_timeout_ms >= self.schedule.time_limit_ms {
            return Err(SpecError::Combination(format!(
                "client.op_timeout ({} ms) must be below schedule.time_limit ({} ms)",
                self.client.op_timeout_ms, self.schedule.time_limit_ms
            )));
        }
        Ok(())
    }

    /// Nanoseconds between operations over all clients.
    pub fn gap_mean_ns(&self) -> u64 {
        (1e9 / self.schedule.rate_per_s) as u64
    }

    /// The workload's name as results and reports show it.
    pub fn workload_name(&self) -> &'static str {
        self.workload.config.kind.name()
    }

    /// The workload as results and reports show it: its name, and the
    /// transactions mixed in (`kv + list-append (20%)`).
    pub fn workload_summary(&self) -> String {
        match self.workload.config.transactions {
            None => self.workload_name().to_string(),
            Some(share) => format!("{} + {} ({}%)", self.workload_name(), share.kind, f64::from(share.per_mille) / 10.0),
        }
    }
}

type Fields = serde_json::Map<String, serde_json::Value>;

fn cluster_plan(spec: &ClusterSpec, system: Option<Arc<dyn System>>) -> Result<(ClusterPlan, Fields), SpecError> {
    if spec.nodes == 0 || spec.nodes > NODES_MAX {
        return Err(SpecError::value("cluster.nodes", format!("{} is not in 1..={NODES_MAX}", spec.nodes)));
    }
    let configured = match system {
        None => crate::systems::registry::configure(&spec.system, &spec.options)?,
        Some(_) if !spec.options.is_empty() => {
            let fields: Vec<&str> = spec.options.keys().map(String::as_str).collect();
            return Err(SpecError::value(
                "cluster",
                format!("{} belong to a registered system, not to one given in code", fields.join(", ")),
            ));
        }
        Some(system) => Configured { system, options: Fields::new() },
    };
    let plan = ClusterPlan {
        system: configured.system,
        nodes: spec.nodes,
        ready_timeout_ms: positive_duration("cluster.ready_timeout", &spec.ready_timeout)?,
        hosts: spec.hosts.as_ref().map(|hosts| hosts_config(hosts, spec.nodes)).transpose()?,
    };
    Ok((plan, configured.options))
}

/// Where the working directory is on a host unless the spec says.
const HOST_DIR_DEFAULT: &str = "/tmp/faultline";

fn hosts_config(spec: &HostsSpec, nodes: usize) -> Result<HostsConfig, SpecError> {
    let config = match spec {
        HostsSpec::Netns(NetnsSpec { netns }) => {
            if !(1..=NETNS_MAX).contains(netns) {
                return Err(SpecError::value("cluster.hosts.netns", format!("{netns} is not in 1..={NETNS_MAX}")));
            }
            HostsConfig::Netns(*netns)
        }
        HostsSpec::Listed(hosts) => {
            let mut listed = Vec::with_capacity(hosts.len());
            for (index, host) in hosts.iter().enumerate() {
                let field = |name: &str| format!("cluster.hosts[{index}].{name}");
                let address = host.address.parse().map_err(|_| {
                    SpecError::value(&field("address"), format!("`{}` is not an IP address (firewall rules match addresses)", host.address))
                })?;
                let dir = host.dir.clone().unwrap_or_else(|| HOST_DIR_DEFAULT.to_string());
                if !dir.starts_with('/') || dir.contains('\'') {
                    return Err(SpecError::value(&field("dir"), format!("`{dir}` is not an absolute path without quotes")));
                }
                listed.push(HostConfig { address, user: host.user.clone(), port: host.port.unwrap_or(22), key: host.key.clone(), dir, sudo: host.sudo });
            }
            HostsConfig::Listed(listed)
        }
    };
    if config.len() < nodes {
        return Err(SpecError::value("cluster.hosts", format!("{} hosts for {nodes} nodes: node i runs on host i", config.len())));
    }
    Ok(config)
}

/// The one place a seed is drawn from outside the test: clock and pid.
/// It is printed at the start and end, so the run can be replayed.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 finalizer, to spread clock bits over the whole seed.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1_000_000_000
}

/// The nemesis combinations a plan cannot run (for a plan changed after
/// validation, as the Rust API does when it adds faults of your own).
pub fn check_nemesis(plan: &TestPlan) -> Result<(), SpecError> {
    nemesis::check(&plan.nemesis, &plan.cluster)
}

fn client_plan(spec: &ClientSpec) -> Result<ClientPlan, SpecError> {
    Ok(ClientPlan {
        op_timeout_ms: positive_duration("client.op_timeout", &spec.op_timeout)?,
        connect_timeout_ms: positive_duration("client.connect_timeout", &spec.connect_timeout)?,
        redirects_max: spec.redirects_max,
    })
}

fn schedule_plan(spec: &ScheduleSpec) -> Result<SchedulePlan, SpecError> {
    if spec.concurrency == 0 || spec.concurrency > CONCURRENCY_MAX {
        return Err(SpecError::value(
            "schedule.concurrency",
            format!("{} is not in 1..={CONCURRENCY_MAX}", spec.concurrency),
        ));
    }
    if !(spec.rate > 0.0 && spec.rate <= RATE_PER_S_MAX) {
        return Err(SpecError::value("schedule.rate", format!("{} is not in (0, {RATE_PER_S_MAX}]", spec.rate)));
    }
    Ok(SchedulePlan {
        time_limit_ms: positive_duration("schedule.time_limit", &spec.time_limit)?,
        rate_per_s: spec.rate,
        concurrency: spec.concurrency,
        recovery_ms: duration("schedule.recovery", &spec.recovery)?,
    })
}

fn checks_plan(spec: &CheckersSpec) -> Result<ChecksPlan, SpecError> {
    if spec.final_read_attempts_max == 0 {
        return Err(SpecError::value("checkers.final_read_attempts_max", "must be at least 1"));
    }
    Ok(ChecksPlan {
        liveness_timeout_ms: positive_duration("checkers.liveness_timeout", &spec.liveness_timeout)?,
        log_error_patterns: spec.log_error_patterns.clone(),
        check_timeout_ms: positive_duration("checkers.check_timeout", &spec.check_timeout)?,
        final_read_attempts_max: spec.final_read_attempts_max,
        convergence_timeout_ms: positive_duration("checkers.convergence_timeout", &spec.convergence_timeout)?,
        consistency_model: spec
            .consistency_model
            .parse()
            .map_err(|error: UnknownConsistencyModel| SpecError::value("checkers.consistency_model", error.to_string()))?,
    })
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(SpecError::value("name", format!("{name:?} must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_workloads::{TransactionShare, WorkloadKind};

    #[test]
    fn the_default_plan_is_the_no_flag_test() {
        let plan = TestPlan::from_spec(&SpecFile::default(), 5).unwrap();
        assert_eq!(plan.seed, 5);
        assert_eq!(plan.resolved.seed, Some(5), "the resolved spec records the seed");
        assert_eq!(plan.cluster.nodes, 5);
        assert_eq!(plan.cluster.system.name(), "faultline-node");
        assert_eq!(plan.schedule.time_limit_ms, 30_000);
        assert_eq!(plan.workload.config.kind, WorkloadKind::Kv);
        let share = TransactionShare { kind: WorkloadKind::ListAppend, per_mille: 200 };
        assert_eq!(plan.workload.config.transactions, Some(share), "a fifth of the operations are list-append transactions");
        assert!(plan.workload.transactions_optional, "where the system runs transactions");
        assert_eq!(plan.workload_summary(), "kv + list-append (20%)");
        let on_disk = SpecFile::from_yaml(include_str!("../../../ci/default.yaml"), "ci/default.yaml").unwrap();
        let plan_on_disk = TestPlan::from_spec(&on_disk, 5).unwrap();
        assert_eq!(plan_on_disk.workload.config, plan.workload.config, "ci/default.yaml is the no-flag test's workload");
        assert_eq!(plan_on_disk.resolved.nemesis, plan.resolved.nemesis, "and its nemesis");
        let families: std::collections::BTreeSet<_> = plan.nemesis.faults.iter().map(|f| f.family()).collect();
        assert_eq!(families.len(), 9, "kill, pause, partition, power loss, clock, revote, membership, corrupt and disk");
        assert_eq!(plan.nemesis.optional.len(), 10, "power loss, the leader's clock, revote with power loss, the membership races, file damage and fsync errors where the machine and system can");
        assert!(plan.nemesis.optional.contains(&crate::nemesis::Fault::Corrupt(crate::nemesis::CorruptMode::Bitflip)));
        assert!(plan.nemesis.optional.contains(&crate::nemesis::Fault::Disk(crate::nemesis::DiskMode::FsyncEioMajority)));
        assert_eq!(plan.nemesis.settings.corrupt.bytes, 1, "one bit flipped: a system that starts on it serves a value nobody wrote");
        let race = crate::nemesis::Fault::Membership(crate::nemesis::MembershipChange::Race);
        let add_minority = crate::nemesis::Fault::Membership(crate::nemesis::MembershipChange::AddMinority);
        assert!(plan.nemesis.optional.contains(&race) && plan.nemesis.optional.contains(&add_minority));
        assert!(plan.nemesis.optional.contains(&crate::nemesis::Fault::Clock(crate::nemesis::ClockMode::IsolateLeader)));
        assert!(plan.nemesis.optional.contains(&crate::nemesis::Fault::RevotePowerLoss));
        assert!(plan.nemesis.settings.clock.fake_monotonic, "a leader set back misses its own timeouts");
        assert!(plan.nemesis.concurrent);
        assert_eq!(plan.nemesis.leader_share, Some(0.5));
        assert_eq!(plan.gap_mean_ns(), 5_000_000, "200 ops/s");
        assert!(plan.resolved.cluster.options.contains_key("bugs"), "the resolved spec shows the system's fields");
    }

    #[test]
    fn yaml_round_trips() {
        let spec = SpecFile::from_yaml("name: x\nseed: 3\nworkload:\n  kind: set\n", "test").unwrap();
        let again = SpecFile::from_yaml(&spec.to_yaml(), "again").unwrap();
        assert_eq!(spec, again);
        let error = SpecFile::from_yaml("workload:\n  kind: set\n  size: 3\n", "test").unwrap_err().to_string();
        assert!(error.contains("unknown field `size`") && !error.contains('\n'), "{error}");
        let resolved = TestPlan::from_spec(&spec, 0).unwrap().resolved;
        let replayed = TestPlan::from_spec(&SpecFile::from_yaml(&resolved.to_yaml(), "spec.yaml").unwrap(), 0).unwrap();
        assert_eq!(replayed.resolved, resolved, "spec.yaml replays the same plan");
    }

    #[test]
    fn a_system_reads_its_own_fields_and_refuses_others() {
        let mut spec = SpecFile::default();
        spec.cluster.options.insert("colour".into(), "red".into());
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("unknown field `colour`"), "{error}");
        let mut spec = SpecFile::default();
        spec.cluster.system = "mongodb".into();
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("cluster.system") && error.contains("etcd"), "the error lists the known systems: {error}");
    }
}
