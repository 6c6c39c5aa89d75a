//! The Rust API: a test built in code, for a `cargo test` of your own.
//!
//! [`Test`] holds a spec (the same data a YAML file holds, with the same
//! defaults and the same validation) and the parts only code can give: a
//! [`System`] of your own, a generator, checkers, and nemeses for faults of
//! your own. [`Test::run`] runs it like `faultline test` does and hands back
//! the [`RunOutcome`]: the verdict, every check, and a results folder with
//! the history and `report.html`.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::{Generator, Invocation, WorkloadKind};

use crate::fields::SpecError;
use crate::nemesis::{Fault, Nemesis};
use crate::plan::{SpecFile, TestPlan};
use crate::report;
use crate::run::{self, RunFailure, RunOptions, RunOutcome};
use crate::systems::System;
use crate::verdict::Checker;

/// Why [`Test::run`] gave no outcome.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The test as built is not a valid plan (one line naming the field).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The run ended in a harness error; `partial` holds its folder.
    #[error(transparent)]
    Run(#[from] RunFailure),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

/// A test built in code; see the crate docs for an example.
#[derive(Clone)]
pub struct Test {
    spec: SpecFile,
    system: Option<Arc<dyn System>>,
    generator: Option<crate::plan::GeneratorFactory>,
    checkers: Vec<Arc<dyn Checker>>,
    liveness_write: Option<crate::plan::LivenessWrite>,
    nemeses: Vec<(&'static str, crate::nemesis::NemesisFactory)>,
    quiet: bool,
}

impl Test {
    /// The no-flag test (`faultline test`), named `name`: 5 faultline-node
    /// nodes, 30 s of the kv workload with a fifth of its operations
    /// list-append transactions (where the system runs transactions) under
    /// kill, pause, partition and (with root and /dev/fuse) power-loss
    /// faults, overlapping.
    pub fn new(name: impl Into<String>) -> Test {
        Test::from_spec(SpecFile { name: name.into(), ..SpecFile::default() })
    }

    /// A test from a spec, as `faultline test --spec` would run it.
    pub fn from_spec(spec: SpecFile) -> Test {
        Test {
            spec,
            system: None,
            generator: None,
            checkers: Vec::new(),
            liveness_write: None,
            nemeses: Vec::new(),
            quiet: true,
        }
    }

    /// The spec, for any field the methods below do not set.
    pub fn spec_mut(&mut self) -> &mut SpecFile {
        &mut self.spec
    }

    /// Test a system of your own instead of a registered one.
    pub fn system(mut self, system: impl System + 'static) -> Test {
        self.spec.cluster.options.clear();
        self.system = Some(Arc::new(system));
        self
    }

    pub fn nodes(mut self, nodes: usize) -> Test {
        self.spec.cluster.nodes = nodes;
        self
    }

    /// Drives every random choice; drawn from the clock when not set.
    pub fn seed(mut self, seed: u64) -> Test {
        self.spec.seed = Some(seed);
        self
    }

    /// Results go to `<store>/<name>/<timestamp>/`.
    pub fn store(mut self, store: impl Into<PathBuf>) -> Test {
        self.spec.store = store.into();
        self
    }

    /// Length of the faulted phase.
    pub fn time_limit(mut self, time_limit: Duration) -> Test {
        self.spec.schedule.time_limit = format!("{}ms", time_limit.as_millis());
        self
    }

    /// Operations per second over all clients.
    pub fn rate(mut self, per_s: f64) -> Test {
        self.spec.schedule.rate = per_s;
        self
    }

    /// Client processes at once.
    pub fn concurrency(mut self, concurrency: usize) -> Test {
        self.spec.schedule.concurrency = concurrency;
        self
    }

    /// A standard workload: what the final reads read, what the built-in
    /// clients map and (unless you give checkers) what is checked. It is
    /// the whole workload: the no-flag test's transactions are not mixed
    /// in (a spec's `workload.transactions` can do that).
    pub fn workload(mut self, kind: WorkloadKind) -> Test {
        self.spec.workload.kind = kind.name().to_string();
        (self.spec.workload.transactions, self.spec.workload.transactions_share) = (None, None);
        self
    }

    /// Built-in faults by name (`kill`, `partition-leader`, `none`, ...).
    pub fn faults(mut self, names: &[&str]) -> Test {
        self.spec.nemesis.faults = names.iter().map(|name| name.to_string()).collect();
        self
    }

    /// How long each fault lasts and how long the quiet between faults is.
    pub fn fault_durations(mut self, fault: (Duration, Duration), heal: (Duration, Duration)) -> Test {
        let ms = |duration: Duration| format!("{}ms", duration.as_millis());
        let nemesis = &mut self.spec.nemesis;
        (nemesis.fault_duration_min, nemesis.fault_duration_max) = (ms(fault.0), ms(fault.1));
        (nemesis.heal_duration_min, nemesis.heal_duration_max) = (ms(heal.0), ms(heal.1));
        self
    }

    /// Your generator for the main phase, built from the run's seed; it
    /// must be pure (time comes from its context). It replaces the standard
    /// workload's operations, transactions mixed in included.
    pub fn generator(mut self, build: impl Fn(u64) -> Box<dyn Generator> + Send + Sync + 'static) -> Test {
        self.generator = Some(Arc::new(build));
        self
    }

    /// A checker of your own; with any, the workload's own are not run
    /// (add `verdict::Linearizable` or `verdict::Durability` to keep them).
    pub fn checker(mut self, checker: impl Checker + 'static) -> Test {
        self.checkers.push(Arc::new(checker));
        self
    }

    /// The write the liveness probe makes on attempt n, for a client that
    /// does not speak `put` (the default probe: `put faultline-liveness`).
    pub fn liveness_write(mut self, write: impl Fn(u64) -> Invocation + Send + Sync + 'static) -> Test {
        self.liveness_write = Some(Arc::new(write));
        self
    }

    /// A fault of your own, named `fault`, injected and healed by the
    /// nemesis `build` makes from a seed; it must claim
    /// `FaultFamily::Custom(fault)`.
    pub fn nemesis(mut self, fault: &'static str, build: impl Fn(u64) -> Box<dyn Nemesis> + Send + Sync + 'static) -> Test {
        self.nemeses.push((fault, Arc::new(build)));
        self
    }

    /// Show the progress display while the test runs.
    pub fn verbose(mut self) -> Test {
        self.quiet = false;
        self
    }

    /// The validated plan, as [`Test::run`] runs it.
    pub fn plan(&self) -> Result<TestPlan, SpecError> {
        let seed = self.spec.seed.unwrap_or_else(crate::plan::fresh_seed);
        let mut plan = match &self.system {
            Some(system) => TestPlan::with_system(&self.spec, seed, system.clone())?,
            None => TestPlan::from_spec(&self.spec, seed)?,
        };
        plan.workload.generator = self.generator.clone();
        if plan.workload.generator.is_some() {
            // The mix belongs to the standard generator: a share of no
            // transactions would leave the transaction checker nothing.
            plan.workload.config.transactions = None;
            (plan.resolved.workload.transactions, plan.resolved.workload.transactions_share) = (None, None);
        }
        plan.workload.liveness_write = self.liveness_write.clone();
        if !self.checkers.is_empty() {
            plan.workload.checkers = Some(self.checkers.clone());
        }
        for (fault, build) in &self.nemeses {
            plan.nemesis.faults.push(Fault::Custom(fault));
            plan.nemesis.custom.push(build.clone());
            plan.resolved.nemesis.faults.push(fault.to_string());
        }
        crate::plan::check_nemesis(&plan)?;
        Ok(plan)
    }

    /// Runs the test on a runtime of its own (call it from a plain
    /// `#[test]`) and writes `report.html` into the results folder.
    pub fn run(&self) -> Result<RunOutcome, TestError> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(TestError::Runtime)?;
        runtime.block_on(self.run_async())
    }

    /// [`Test::run`] inside a runtime you already have.
    pub async fn run_async(&self) -> Result<RunOutcome, TestError> {
        let plan = self.plan()?;
        let outcome = run::run(&plan, RunOptions { quiet: self.quiet }).await?;
        report::write_run(&outcome.results, &outcome.dir, &outcome.timeline, None, None)?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientFactory;
    use crate::cluster::{ClusterError, Db};
    use crate::nemesis::{Effect, FaultFamily, NemesisError};
    use crate::systems::Capabilities;

    #[derive(Debug)]
    struct Mine;

    impl System for Mine {
        fn name(&self) -> &str {
            "mine"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::default()
        }
        fn db(&self) -> Result<Arc<dyn Db>, ClusterError> {
            Err(ClusterError::Config("not run in this test".into()))
        }
        fn clients(&self) -> ClientFactory {
            Arc::new(|_, _| unreachable!("not run in this test"))
        }
    }

    struct Quiet;

    impl Nemesis for Quiet {
        fn handles(&self) -> Vec<FaultFamily> {
            vec![FaultFamily::Custom("quiet")]
        }
        fn invoke<'a>(&'a mut self, _: Fault, _: &'a crate::cluster::Cluster) -> crate::cluster::BoxFuture<'a, Result<Effect, NemesisError>> {
            Box::pin(async { Ok(Effect::Null) })
        }
        fn heal<'a>(&'a mut self, _: &'a crate::cluster::Cluster) -> crate::cluster::BoxFuture<'a, Result<Effect, NemesisError>> {
            Box::pin(async { Ok(Effect::Null) })
        }
    }

    #[test]
    fn a_test_in_code_is_a_validated_plan_with_its_own_parts() {
        let test = Test::new("t").system(Mine).nodes(3).seed(4).faults(&["kill-random"]).nemesis("quiet", |_| Box::new(Quiet));
        let plan = test.plan().unwrap();
        assert_eq!((plan.cluster.system.name(), plan.cluster.nodes, plan.seed), ("mine", 3, 4));
        assert_eq!(plan.nemesis.faults.last(), Some(&Fault::Custom("quiet")));
        assert_eq!(plan.resolved.nemesis.faults, ["kill-random", "quiet"], "spec.yaml names the custom fault");
        assert_eq!(plan.resolved.cluster.system, "mine");
        let mix = crate::nemesis::Mix::standard(&plan.nemesis.faults, 4, &plan.nemesis.settings, &plan.nemesis.custom).unwrap();
        assert!(mix.handles().contains(&FaultFamily::Custom("quiet")), "the mix routes the custom fault to its nemesis");
        assert!(Test::new("t").system(Mine).plan().unwrap().workload.config.transactions.is_some(), "the no-flag test's mix");
        let register = Test::new("t").system(Mine).workload(WorkloadKind::Register).plan().unwrap();
        assert_eq!(register.workload.config.transactions, None, "a named workload is the whole workload");
        let own = Test::new("t").system(Mine).generator(|_| Box::new(faultline_workloads::each(Vec::new()))).plan().unwrap();
        assert_eq!((own.workload.config.transactions, own.resolved.workload.transactions), (None, None), "your generator replaces the mix");
        let error = Test::new("t").system(Mine).faults(&["revote"]).plan().unwrap_err().to_string();
        assert!(error.contains("does not name its leader"), "{error}");
        let mut fields = Test::new("t").system(Mine);
        fields.spec_mut().cluster.options.insert("mode".into(), "async".into());
        let error = fields.plan().unwrap_err().to_string();
        assert!(error.contains("mode belong to a registered system"), "{error}");
        let error = Test::new("t").nodes(0).plan().unwrap_err().to_string();
        assert!(error.contains("cluster.nodes"), "{error}");
    }
}
