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

use faultline_workloads::{Generator, WorkloadConfig, WorkloadKind};

use crate::nemesis::link::LinkSettings;
use crate::nemesis::Fault;
use crate::systems::System;
use crate::verdict::Checker;

mod nemesis;
mod overrides;
mod spec;

pub use crate::fields::SpecError;
use crate::fields::{duration, positive_duration};
pub use spec::{CheckersSpec, ClientSpec, ClusterSpec, NemesisSpec, ScheduleSpec, SpecFile, WorkloadSpec};

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub op_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub redirects_max: u32,
}

/// Builds a run's main-phase generator from its seed.
pub type GeneratorFactory = Arc<dyn Fn(u64) -> Box<dyn Generator> + Send + Sync>;

#[derive(Clone)]
pub struct WorkloadPlan {
    /// The standard workload: what the built-in clients map, what the final
    /// reads read, and (unless `checkers` says otherwise) what is checked.
    pub config: WorkloadConfig,
    /// A generator of your own for the main phase (the Rust API); None:
    /// the standard workload's.
    pub generator: Option<GeneratorFactory>,
    /// Checkers of your own for the history (the Rust API); None: the ones
    /// the standard workload names.
    pub checkers: Option<Vec<Arc<dyn Checker>>>,
}

#[derive(Debug, Clone)]
pub struct NemesisPlan {
    pub faults: Vec<Fault>,
    pub fault_duration_ms_min: u64,
    pub fault_duration_ms_max: u64,
    pub heal_duration_ms_min: u64,
    pub heal_duration_ms_max: u64,
    pub link: LinkSettings,
    /// One schedule per fault family, overlapping (`nemesis.concurrent`).
    pub concurrent: bool,
}

impl std::fmt::Debug for WorkloadPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadPlan")
            .field("config", &self.config)
            .field("generator", &self.generator.as_ref().map(|_| "custom"))
            .field("checkers", &self.checkers.as_ref().map(|checkers| checkers.iter().map(|c| c.name()).collect::<Vec<_>>()))
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
        let (cluster, options) = cluster_plan(&spec.cluster)?;
        resolved.cluster.options = options;
        let plan = TestPlan {
            name: spec.name.clone(),
            seed,
            store_dir: spec.store.clone(),
            nemesis: nemesis::plan(&spec.nemesis, &cluster)?,
            cluster,
            client: client_plan(&spec.client)?,
            workload: WorkloadPlan { config: workload_config(&spec.workload)?, generator: None, checkers: None },
            schedule: schedule_plan(&spec.schedule)?,
            checks: checks_plan(&spec.checkers)?,
            resolved,
        };
        plan.check_combinations()?;
        Ok(plan)
    }

    fn check_combinations(&self) -> Result<(), SpecError> {
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
}

fn cluster_plan(spec: &ClusterSpec) -> Result<(ClusterPlan, serde_json::Map<String, serde_json::Value>), SpecError> {
    if spec.nodes == 0 || spec.nodes > NODES_MAX {
        return Err(SpecError::value("cluster.nodes", format!("{} is not in 1..={NODES_MAX}", spec.nodes)));
    }
    let configured = crate::systems::registry::configure(&spec.system, &spec.options)?;
    let plan = ClusterPlan {
        system: configured.system,
        nodes: spec.nodes,
        ready_timeout_ms: positive_duration("cluster.ready_timeout", &spec.ready_timeout)?,
    };
    Ok((plan, configured.options))
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

fn workload_config(spec: &WorkloadSpec) -> Result<WorkloadConfig, SpecError> {
    let kind: WorkloadKind = spec
        .kind
        .parse()
        .map_err(|e: faultline_workloads::UnknownWorkload| SpecError::value("workload.kind", e.to_string()))?;
    if spec.keys_active == 0 || spec.keys_active > KEYS_ACTIVE_MAX {
        return Err(SpecError::value(
            "workload.keys_active",
            format!("{} is not in 1..={KEYS_ACTIVE_MAX}", spec.keys_active),
        ));
    }
    if spec.ops_per_key_max == 0 {
        return Err(SpecError::value("workload.ops_per_key_max", "must be at least 1"));
    }
    Ok(WorkloadConfig { kind, keys_active: spec.keys_active, ops_per_key_max: spec.ops_per_key_max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_the_no_flag_test() {
        let plan = TestPlan::from_spec(&SpecFile::default(), 5).unwrap();
        assert_eq!(plan.seed, 5);
        assert_eq!(plan.resolved.seed, Some(5), "the resolved spec records the seed");
        assert_eq!(plan.cluster.nodes, 5);
        assert_eq!(plan.cluster.system.name(), "faultline-node");
        assert_eq!(plan.schedule.time_limit_ms, 30_000);
        assert_eq!(plan.workload.config.kind, WorkloadKind::Kv);
        let families: std::collections::BTreeSet<_> = plan.nemesis.faults.iter().map(|f| f.family()).collect();
        assert_eq!(families.len(), 3, "kill, pause and partition");
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
