//! The nemesis section: which faults, how long each lasts, and whether the
//! cluster can take them (sizes, odd clusters for the scripted scenarios, a
//! system that names its leader).
use crate::nemesis::clock::ClockSettings;
use crate::nemesis::corrupt::CorruptSettings;
use crate::nemesis::disk::DiskSettings;
use crate::nemesis::link::LinkSettings;
use crate::nemesis::recorded::{RecordedSchedule, ScheduleHeader, ONE_AT_A_TIME, SCHEDULE_VERSION};
use crate::nemesis::{FamilySettings, Fault, FaultFamily, TargetsBy, FAMILY_NAMES};

use crate::fields::{duration, positive_duration as positive};
use super::{ClusterPlan, FamilyHealMs, NemesisPlan, NemesisSpec, SpecError, TestPlan};

pub(super) fn plan(spec: &NemesisSpec, cluster: &ClusterPlan) -> Result<NemesisPlan, SpecError> {
    let (mut faults, optional) = faults(spec, cluster.nodes)?;
    if !cluster.system.capabilities().leader {
        // A system that cannot name its leader gets what a leader-targeted
        // fault would do there (a random node), under that fault's name.
        faults = faults.into_iter().map(Fault::without_leader).collect();
    }
    let plan = NemesisPlan {
        faults,
        fault_duration_ms_min: positive("nemesis.fault_duration_min", &spec.fault_duration_min)?,
        fault_duration_ms_max: positive("nemesis.fault_duration_max", &spec.fault_duration_max)?,
        heal_duration_ms_min: positive("nemesis.heal_duration_min", &spec.heal_duration_min)?,
        heal_duration_ms_max: positive("nemesis.heal_duration_max", &spec.heal_duration_max)?,
        family_heal_ms: family_heal_ms(spec)?,
        settings: FamilySettings {
            link: LinkSettings {
                delay_ms: duration("nemesis.link_delay", &spec.link_delay)?,
                jitter_ms: duration("nemesis.link_jitter", &spec.link_jitter)?,
                bandwidth_bytes_per_s: spec.link_bandwidth_bytes_per_s,
            },
            corrupt: corrupt_settings(spec)?,
            disk: DiskSettings { delay_us: duration("nemesis.disk_delay", &spec.disk_delay)? * 1_000 },
            clock: ClockSettings {
                offset_ms_max: positive("nemesis.clock_offset_max", &spec.clock_offset_max)?,
                strobe_period_ms: positive("nemesis.clock_strobe_period", &spec.clock_strobe_period)?,
                fake_monotonic: spec.clock_fake_monotonic,
            },
        },
        concurrent: spec.concurrent,
        optional,
        leader_share: spec.leader_share,
        keep_majority_running: spec.keep_majority_running,
        custom: Vec::new(),
        recorded: None,
    };
    check(&plan, cluster)?;
    Ok(plan)
}

/// Largest clock offset a fault may set.
const CLOCK_OFFSET_MS_MAX: u64 = 86_400_000;
/// Longest wait `disk-slow` adds to one I/O (lazyfs's own bound).
const DISK_DELAY_US_MAX: u64 = 1_000_000;
/// Bytes one corrupt fault may touch at most.
const CORRUPT_BYTES_MAX: u64 = 1 << 20;

/// Longest quiet time a family may ask for between its faults.
const FAMILY_HEAL_MS_MAX: u64 = 600_000;

fn family_heal_ms(spec: &NemesisSpec) -> Result<FamilyHealMs, SpecError> {
    let mut ranges = Vec::new();
    for (name, [min, max]) in &spec.family_heal_durations {
        let field = format!("nemesis.family_heal_durations.{name}");
        let family = FaultFamily::named(name)
            .ok_or_else(|| SpecError::value(&field, format!("{name:?} is not a fault family ({FAMILY_NAMES})")))?;
        let range = (duration(&field, min)?, duration(&field, max)?);
        if range.0 > range.1 || range.1 > FAMILY_HEAL_MS_MAX {
            return Err(SpecError::value(&field, format!("[{min}, {max}] is not a range within 10m")));
        }
        ranges.push((family, range));
    }
    Ok(ranges)
}

fn corrupt_settings(spec: &NemesisSpec) -> Result<CorruptSettings, SpecError> {
    if let Err(error) = glob::Pattern::new(&spec.corrupt_files) {
        return Err(SpecError::value("nemesis.corrupt_files", format!("{:?} is not a glob: {error}", spec.corrupt_files)));
    }
    if spec.corrupt_files.starts_with('/') || spec.corrupt_files.split('/').any(|part| part == "..") {
        return Err(SpecError::value("nemesis.corrupt_files", format!("{:?} must stay inside the data dir (relative, no ..)", spec.corrupt_files)));
    }
    if !(1..=CORRUPT_BYTES_MAX).contains(&spec.corrupt_bytes) {
        return Err(SpecError::value("nemesis.corrupt_bytes", format!("{} is not in 1..={CORRUPT_BYTES_MAX}", spec.corrupt_bytes)));
    }
    Ok(CorruptSettings { files_glob: spec.corrupt_files.clone(), bytes: spec.corrupt_bytes })
}

impl TestPlan {
    /// What `schedule.jsonl` says it was recorded with.
    pub fn schedule_header(&self) -> ScheduleHeader {
        ScheduleHeader {
            schedule_version: SCHEDULE_VERSION,
            seed: self.seed,
            system: self.cluster.system.name().to_string(),
            nodes: self.cluster.nodes,
            time_limit_ms: self.schedule.time_limit_ms,
            concurrent: self.nemesis.concurrent,
            workload: serde_json::to_value(&self.resolved.workload).unwrap_or_default(),
            rate_per_s: self.schedule.rate_per_s,
            concurrency: self.schedule.concurrency,
        }
    }

    /// This plan with its nemesis following `schedule` instead of drawing
    /// one: the faults are the schedule's (what a leader-targeted one does
    /// on a system that cannot name its leader, as in a spec), checked as a
    /// spec's would be, and the saved spec names them.
    pub fn follow_schedule(mut self, schedule: RecordedSchedule, by: TargetsBy) -> Result<TestPlan, SpecError> {
        let names_leader = self.cluster.system.capabilities().leader;
        let mut schedule = schedule;
        for event in &mut schedule.events {
            if !names_leader {
                event.fault = event.fault.without_leader();
            }
        }
        self.nemesis.faults = schedule.faults();
        self.nemesis.optional.clear();
        self.nemesis.concurrent = schedule.groups().iter().any(|(group, _)| group != ONE_AT_A_TIME);
        check(&self.nemesis, &self.cluster)?;
        self.resolved.nemesis.faults = self.nemesis.faults.iter().map(|fault| fault.name().to_string()).collect();
        self.resolved.nemesis.concurrent = self.nemesis.concurrent;
        self.nemesis.recorded = Some((schedule, by));
        Ok(self)
    }
}

/// Combinations that cannot run.
pub(crate) fn check(plan: &NemesisPlan, cluster: &ClusterPlan) -> Result<(), SpecError> {
    if plan.fault_duration_ms_min > plan.fault_duration_ms_max {
        return Err(SpecError::Combination(
            "nemesis.fault_duration_min is above nemesis.fault_duration_max".to_string(),
        ));
    }
    if plan.heal_duration_ms_min > plan.heal_duration_ms_max {
        return Err(SpecError::Combination(
            "nemesis.heal_duration_min is above nemesis.heal_duration_max".to_string(),
        ));
    }
    if let Some(share) = plan.leader_share {
        if !(0.0..=1.0).contains(&share) {
            return Err(SpecError::value("nemesis.leader_share", format!("{share} is not a share in 0..=1")));
        }
    }
    // An optional fault (`membership?`, `corrupt?`) is left out of a run
    // that cannot take it (`run::fit_to_machine`); only a required one is
    // refused here.
    let families = |family: FaultFamily| {
        plan.faults.iter().any(|fault| fault.family() == family && !plan.optional.contains(fault))
    };
    if families(FaultFamily::Membership) && !cluster.system.capabilities().membership {
        return Err(SpecError::Combination(format!(
            "nemesis membership adds and removes nodes through the system's own procedure, and system {} declares none (Capabilities::membership)",
            cluster.system.name()
        )));
    }
    if cluster.hosts.is_some() && [FaultFamily::Corrupt, FaultFamily::Disk, FaultFamily::Clock].into_iter().any(families) {
        return Err(SpecError::Combination(
            "nemeses corrupt, disk and clock act on nodes' files and processes on this machine, and cluster.hosts runs them on other hosts".to_string(),
        ));
    }
    if plan.faults.iter().any(|fault| fault.family() == FaultFamily::Clock) && plan.settings.clock.offset_ms_max > CLOCK_OFFSET_MS_MAX {
        return Err(SpecError::value("nemesis.clock_offset_max", "is above the 1 day bound".to_string()));
    }
    if plan.settings.disk.delay_us > DISK_DELAY_US_MAX {
        return Err(SpecError::value("nemesis.disk_delay", format!("{} ms is above the 1 s bound", plan.settings.disk.delay_us / 1_000)));
    }
    // A concurrent schedule runs each scenario alone, so it may sit beside
    // partitions.
    let required = |fault: &&Fault| fault.is_scripted() && !plan.optional.contains(fault);
    let Some(scenario) = plan.faults.iter().find(required) else { return Ok(()) };
    if let Err(reason) = scripted_fits(cluster) {
        return Err(SpecError::Combination(format!("nemesis {scenario} {reason}")));
    }
    Ok(())
}

/// Whether the scripted scenarios (revote, figure-8) can run on this
/// cluster; the reason, after the scenario's name, when not.
pub(crate) fn scripted_fits(cluster: &ClusterPlan) -> Result<(), String> {
    if cluster.hosts.is_some() {
        return Err("steers clients through the proxy, which cluster.hosts does not use".to_string());
    }
    if cluster.nodes % 2 == 0 {
        return Err(format!("needs an odd cluster size (two majorities that share one voter), the cluster has {}", cluster.nodes));
    }
    if !cluster.system.capabilities().leader {
        return Err(format!("follows the leader through the system's own report, and system {} does not name its leader", cluster.system.name()));
    }
    Ok(())
}

/// The faults named, and those of them named with a trailing `?`
/// (injected where this machine can, left out with a warning elsewhere).
fn faults(spec: &NemesisSpec, nodes: usize) -> Result<(Vec<Fault>, Vec<Fault>), SpecError> {
    let mut faults: Vec<Fault> = Vec::new();
    let mut optional: Vec<Fault> = Vec::new();
    for written in &spec.faults {
        let name = written.trim().strip_suffix('?').unwrap_or(written);
        let expanded = Fault::parse_name(name).map_err(|message| SpecError::value("nemesis.faults", message))?;
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
            if written.trim().ends_with('?') && !optional.contains(&fault) {
                optional.push(fault);
            }
        }
    }
    Ok((faults, optional))
}

#[cfg(test)]
mod tests {
    use crate::nemesis::{Fault, KillTarget};
    use crate::plan::{SpecFile, TestPlan};

    #[test]
    fn a_trailing_question_mark_makes_faults_optional() {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["kill-leader".to_string(), "power-loss?".to_string()];
        let plan = TestPlan::from_spec(&spec, 0).unwrap();
        assert_eq!(plan.nemesis.faults.len(), 5, "{:?}", plan.nemesis.faults);
        assert_eq!(plan.nemesis.optional.len(), 4, "every power-loss fault, not kill-leader");
        assert!(!plan.nemesis.optional.contains(&Fault::Kill(KillTarget::Leader)));
    }

    #[test]
    fn only_a_required_fault_the_system_or_hosts_cannot_take_is_refused() {
        let generic = "cluster:\n  system: generic\n  nodes: 3\n  generic:\n    start: exec x\n    client: external\n    client_command: exec y\nnemesis:\n  faults: [kill, membership]\n";
        let error = TestPlan::from_spec(&SpecFile::from_yaml(generic, "t").unwrap(), 0).unwrap_err().to_string();
        assert!(error.contains("system generic declares none"), "{error}");
        let optional = generic.replace("membership]", "membership?]");
        assert!(TestPlan::from_spec(&SpecFile::from_yaml(&optional, "t").unwrap(), 0).is_ok(), "the run leaves it out");
        let netns = "cluster:\n  hosts:\n    netns: 5\nnemesis:\n  faults: [kill, corrupt]\n";
        let error = TestPlan::from_spec(&SpecFile::from_yaml(netns, "t").unwrap(), 0).unwrap_err().to_string();
        assert!(error.contains("cluster.hosts"), "{error}");
        let optional = netns.replace("corrupt]", "corrupt?, disk?]");
        assert!(TestPlan::from_spec(&SpecFile::from_yaml(&optional, "t").unwrap(), 0).is_ok(), "the run leaves them out");
    }

    #[test]
    fn family_heal_durations_name_families_and_ranges() {
        let plan = TestPlan::from_spec(&SpecFile::default(), 0).unwrap();
        let expected = [(crate::nemesis::FaultFamily::Corrupt, (3_000, 6_000)), (crate::nemesis::FaultFamily::Disk, (8_000, 14_000))];
        assert_eq!(plan.nemesis.family_heal_ms, expected, "the default's");
        let with = |entry: &str| {
            let yaml = format!("nemesis:\n  family_heal_durations: {{{entry}}}\n");
            TestPlan::from_spec(&SpecFile::from_yaml(&yaml, "t").unwrap(), 0).map(|plan| plan.nemesis.family_heal_ms)
        };
        assert_eq!(with("kill: [1s, 2s]").unwrap(), [(crate::nemesis::FaultFamily::Kill, (1_000, 2_000))]);
        for (entry, says) in [
            ("kill-leader: [1s, 2s]", "\"kill-leader\" is not a fault family"),
            ("mix: [1s, 2s]", "\"mix\" is not a fault family"),
            ("disk: [5s, 2s]", "[5s, 2s] is not a range"),
            ("disk: [1s, 11m]", "within 10m"),
            ("disk: [1s, soon]", "nemesis.family_heal_durations.disk"),
        ] {
            let error = with(entry).unwrap_err().to_string();
            assert!(error.contains(says) && !error.contains('\n'), "{entry}: {error}");
        }
    }

    #[test]
    fn a_family_keeps_what_fits_a_small_cluster() {
        let mut spec = SpecFile::default();
        spec.cluster.nodes = 2;
        spec.nemesis.faults = vec!["kill".to_string(), "partition".to_string()];
        let plan = TestPlan::from_spec(&spec, 0).unwrap();
        assert!(plan.nemesis.faults.iter().all(|fault| fault.nodes_min() <= 2), "{:?}", plan.nemesis.faults);
        assert!(plan.nemesis.faults.contains(&Fault::Kill(KillTarget::Leader)));
        spec.nemesis.faults = vec!["partition-ring".to_string()];
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("needs at least 3 nodes"), "{error}");
    }

    #[test]
    fn scripted_scenarios_need_an_odd_cluster_the_network_and_a_leader() {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["revote".to_string()];
        for nodes in [3, 5] {
            spec.cluster.nodes = nodes;
            assert_eq!(TestPlan::from_spec(&spec, 0).unwrap().nemesis.faults, [Fault::Revote]);
        }
        spec.cluster.nodes = 4;
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("odd cluster size") && error.contains("has 4"), "{error}");
        spec.cluster.nodes = 5;
        spec.nemesis.faults = vec!["revote".to_string(), "kill".to_string(), "link-delay".to_string()];
        spec.nemesis.concurrent = false;
        assert!(TestPlan::from_spec(&spec, 0).is_ok(), "one fault at a time shares the network");
        spec.nemesis.concurrent = true;
        assert!(TestPlan::from_spec(&spec, 0).is_ok(), "a concurrent schedule runs each scenario alone");
        spec.nemesis.faults = vec!["mix".to_string()];
        assert!(!TestPlan::from_spec(&spec, 0).unwrap().nemesis.faults.contains(&Fault::Revote), "mix leaves revote out");
        spec.nemesis.faults = vec!["figure-8".to_string(), "partition".to_string()];
        spec.nemesis.concurrent = false;
        spec.cluster.nodes = 4;
        let error = TestPlan::from_spec(&spec, 0).unwrap_err().to_string();
        assert!(error.contains("nemesis figure-8 needs an odd cluster size"), "{error}");
        let generic = "cluster:\n  system: generic\n  nodes: 3\n  generic:\n    start: exec x\n    client: external\n    client_command: exec y\nnemesis:\n  faults: [revote]\n";
        let error = TestPlan::from_spec(&SpecFile::from_yaml(generic, "t").unwrap(), 0).unwrap_err().to_string();
        assert!(error.contains("does not name its leader"), "{error}");
        let with_leader = generic.replace("    client: external\n", "    client: external\n    leader: echo 0\n");
        assert!(TestPlan::from_spec(&SpecFile::from_yaml(&with_leader, "t").unwrap(), 0).is_ok(), "a leader command names it");
        let optional = generic.replace("[revote]", "[kill, revote-power-loss?]").replace("nodes: 3", "nodes: 4");
        let plan = TestPlan::from_spec(&SpecFile::from_yaml(&optional, "t").unwrap(), 0).expect("an optional scenario is the run's to leave out");
        assert!(plan.nemesis.optional.contains(&Fault::RevotePowerLoss));
        let cluster = &plan.cluster;
        assert!(super::scripted_fits(cluster).unwrap_err().contains("odd cluster size"), "the run leaves it out for this reason");
    }

    #[test]
    fn leader_targeted_faults_are_what_they_do_on_a_system_without_a_leader() {
        let generic = "cluster:\n  system: generic\n  nodes: 3\n  generic:\n    start: exec x\n    client: external\n    client_command: exec y\nnemesis:\n  faults: [kill-leader, pause-leader, partition-leader, kill-minority]\n";
        let plan = TestPlan::from_spec(&SpecFile::from_yaml(generic, "t").unwrap(), 0).unwrap();
        let names: Vec<&str> = plan.nemesis.faults.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["kill-random", "pause-random", "partition-random", "kill-minority"]);
        let node = TestPlan::from_spec(&SpecFile::from_yaml("nemesis:\n  faults: [kill-leader]\n", "t").unwrap(), 0).unwrap();
        assert_eq!(node.nemesis.faults, [Fault::Kill(KillTarget::Leader)], "faultline-node names its leader");
    }
}
