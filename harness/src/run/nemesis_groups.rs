//! The nemesis groups of a plan: one schedule for all its faults, or one
//! per fault family (`nemesis.concurrent`), each with the quiet times its
//! faults need beside the others.
use crate::nemesis::recorded::{RecordedEvent, ONE_AT_A_TIME};
use crate::nemesis::{Fault, FaultFamily, Mix, NemesisError, Schedule};
use crate::plan::TestPlan;

/// Least quiet time before a scripted scenario in a concurrent schedule
/// with other families: a scenario holds the cluster alone for seconds, so
/// one every 8-14 s (a 30 s run gets one or two) leaves the other families
/// most of the run.
const SCRIPTED_QUIET_MS: (u64, u64) = (8_000, 14_000);
/// Least quiet time before a fault that runs alone (a membership race,
/// `clock-isolate-leader`): it holds the cluster for a fault's length, so
/// a 30 s run gets about four of each family.
const ALONE_QUIET_MS: (u64, u64) = (3_000, 6_000);

/// One schedule and the nemesis it drives. Tests run one group for all
/// faults, or (`nemesis.concurrent`) one group per fault family, so faults
/// of different families overlap.
pub struct NemesisGroup {
    pub mix: Mix,
    pub schedule: Schedule,
    /// The family's name in a concurrent schedule, else `all`.
    pub label: String,
    /// `heal-<family>` in a concurrent schedule, else `heal`.
    pub heal_name: String,
    /// A family with a spacing of its own beside others (a scripted
    /// scenario's 8-14 s, or `nemesis.family_heal_durations`): its quiet
    /// runs in wall time, which the faults that run alone do not push back
    /// (`postpone`).
    pub spaced: bool,
}

impl NemesisGroup {
    /// The nemesis schedules of a plan: one for all its faults, or with
    /// `nemesis.concurrent` one per fault family (each with its own seeded
    /// schedule), so a partition can be in force while a node is down.
    pub fn for_plan(plan: &TestPlan) -> Result<Vec<NemesisGroup>, NemesisError> {
        let schedule = |faults: Vec<crate::nemesis::Fault>, seed: u64| {
            Schedule::new(
                faults,
                (plan.nemesis.fault_duration_ms_min, plan.nemesis.fault_duration_ms_max),
                (plan.nemesis.heal_duration_ms_min, plan.nemesis.heal_duration_ms_max),
                seed,
            )
            .with_leader_share(plan.nemesis.leader_share)
        };
        if let Some((recorded, _)) = &plan.nemesis.recorded {
            return recorded
                .groups()
                .into_iter()
                .map(|(label, events)| {
                    let faults: Vec<Fault> = events.iter().map(|event| event.fault).collect();
                    let mix = Mix::standard(&faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
                    let heal_name = RecordedEvent::heal_name(&label);
                    Ok(NemesisGroup { mix, schedule: Schedule::recorded(events), label, heal_name, spaced: false })
                })
                .collect();
        }
        let faults = &plan.nemesis.faults;
        if !plan.nemesis.concurrent {
            let mix = Mix::standard(faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
            let label = ONE_AT_A_TIME.to_string();
            let heal_name = RecordedEvent::heal_name(&label);
            return Ok(vec![NemesisGroup { mix, schedule: schedule(faults.clone(), plan.seed), label, heal_name, spaced: false }]);
        }
        let mut families: Vec<FaultFamily> = faults.iter().map(|fault| fault.family()).collect();
        families.sort_unstable();
        families.dedup();
        let alone = families.len() == 1;
        families
            .into_iter()
            .map(|family| {
                let faults: Vec<_> = faults.iter().copied().filter(|fault| fault.family() == family).collect();
                let mix = Mix::standard(&faults, plan.seed, &plan.nemesis.settings, &plan.nemesis.custom)?;
                // Each family's schedule gets a stream of its own.
                let seed = plan.seed ^ (0x6661_6d69_6c79_0000 + family.stream());
                let label = family.name().to_string();
                let heal_name = RecordedEvent::heal_name(&label);
                let mut schedule = schedule(faults.clone(), seed);
                let scripted = faults.iter().all(|fault| fault.is_scripted());
                let held_alone = match (scripted, faults.iter().all(|fault| fault.runs_alone())) {
                    (true, _) => Some(SCRIPTED_QUIET_MS),
                    (false, true) => Some(ALONE_QUIET_MS),
                    (false, false) => None,
                };
                let asked = plan.nemesis.family_heal_ms.iter().find(|(named, _)| *named == family).map(|(_, range)| *range);
                for quiet_ms in [held_alone, asked].into_iter().flatten().filter(|_| !alone) {
                    schedule = schedule.with_quiet_ms_min(quiet_ms);
                }
                let spaced = !alone && (scripted || asked.is_some());
                Ok(NemesisGroup { mix, schedule, label, heal_name, spaced })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SpecFile;

    fn plan(concurrent: bool) -> TestPlan {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["partition-halves".into(), "kill-leader".into(), "kill-random".into()];
        spec.nemesis.concurrent = concurrent;
        TestPlan::from_spec(&spec, 1).unwrap()
    }

    #[test]
    fn scripted_and_named_families_beside_others_wait_longer_between_faults() {
        let mut spec = SpecFile::default();
        spec.nemesis.faults = vec!["kill".into(), "revote-power-loss".into()];
        spec.nemesis.concurrent = true;
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        let quiet = |group: &mut NemesisGroup| group.schedule.next_step(0).unwrap().quiet_ms;
        assert_eq!(groups[1].label, "revote");
        assert!(groups[1].spaced && !groups[0].spaced, "the scenario keeps its spacing in wall time");
        for _ in 0..20 {
            assert!((SCRIPTED_QUIET_MS.0..=SCRIPTED_QUIET_MS.1).contains(&quiet(&mut groups[1])));
            assert!(quiet(&mut groups[0]) < SCRIPTED_QUIET_MS.0, "the other families keep the spec's range");
        }
        spec.nemesis.faults = vec!["kill".into(), "corrupt-bitflip".into(), "disk-fsync-eio-majority".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        let labels: Vec<&str> = groups.iter().map(|group| group.label.as_str()).collect();
        assert_eq!(labels, ["kill", "corrupt", "disk"]);
        let spaced: Vec<bool> = groups.iter().map(|group| group.spaced).collect();
        assert_eq!(spaced, [false, true, true], "the families the spec spaces keep it in wall time");
        for _ in 0..20 {
            assert!((3_000..=6_000).contains(&quiet(&mut groups[1])), "file corruption, as the default spec asks");
            assert!((8_000..=14_000).contains(&quiet(&mut groups[2])), "disk errors, as the default spec asks");
            assert!(quiet(&mut groups[0]) < 3_000, "kill keeps the spec's range");
        }
        spec.nemesis.family_heal_durations.clear();
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!((0..3).all(|_| quiet(&mut groups[2]) < 3_000), "a spec that asks for nothing keeps its range");
        assert!(groups.iter().all(|group| !group.spaced), "and spaces nothing");
        spec.nemesis.faults = vec!["kill".into(), "membership-race".into(), "membership-add-minority".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert_eq!(groups[1].label, "membership");
        assert!(!groups[1].spaced, "a fault that runs alone stands still while another does");
        assert!((0..20).all(|_| (ALONE_QUIET_MS.0..=ALONE_QUIET_MS.1).contains(&quiet(&mut groups[1]))), "membership races run alone, every 3-6 s");
        spec.nemesis.faults = vec!["kill".into(), "clock-isolate-leader".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert_eq!(groups[1].label, "clock");
        assert!((0..20).all(|_| (ALONE_QUIET_MS.0..=ALONE_QUIET_MS.1).contains(&quiet(&mut groups[1]))), "the staged lease race runs alone, every 3-6 s");
        spec.nemesis.faults = vec!["kill".into(), "membership-race".into(), "membership-add".into()];
        let mut groups = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!((0..20).any(|_| quiet(&mut groups[1]) < ALONE_QUIET_MS.0), "a family with a fault that runs beside others keeps the spec's range");
        spec.nemesis.faults = vec!["revote".into()];
        let mut alone = NemesisGroup::for_plan(&TestPlan::from_spec(&spec, 1).unwrap()).unwrap();
        assert!(quiet(&mut alone[0]) < SCRIPTED_QUIET_MS.0, "a scenario on its own keeps the spec's range");
    }

    #[test]
    fn a_concurrent_nemesis_gets_one_schedule_per_family() {
        let groups = NemesisGroup::for_plan(&plan(true)).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.heal_name.as_str()).collect();
        assert_eq!(names, ["heal-kill", "heal-partition"]);
        let one = NemesisGroup::for_plan(&plan(false)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].heal_name, "heal");
    }
}
