//! Composition: one nemesis per fault family, each fault routed to the
//! nemesis that claims its family; two claims on one family are refused.
use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::clock::{ClockNemesis, ClockSettings};
use super::corrupt::{CorruptNemesis, CorruptSettings};
use super::disk::{DiskNemesis, DiskSettings};
use super::kill::KillNemesis;
use super::link::{LinkNemesis, LinkSettings};
use super::membership::MembershipNemesis;
use super::partition::PartitionNemesis;
use super::pause::PauseNemesis;
use super::power::PowerNemesis;
use super::scenarios::figure8::FigureEightNemesis;
use super::scenarios::revote::RevoteNemesis;
use super::{Effect, Fault, FaultFamily, Nemesis, NemesisError, NemesisFactory, Targets};
use crate::cluster::{BoxFuture, Cluster};

/// What the families that take settings are set to (the spec's
/// `nemesis.link_*`, `nemesis.corrupt_*`, `nemesis.disk_*`, `nemesis.clock_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySettings {
    pub link: LinkSettings,
    pub corrupt: CorruptSettings,
    pub disk: DiskSettings,
    pub clock: ClockSettings,
}

pub struct Mix {
    nemeses: Vec<Box<dyn Nemesis>>,
    route: BTreeMap<FaultFamily, usize>,
}

impl Mix {
    pub fn compose(nemeses: Vec<Box<dyn Nemesis>>) -> Result<Mix, NemesisError> {
        let mut route = BTreeMap::new();
        for (index, nemesis) in nemeses.iter().enumerate() {
            for family in nemesis.handles() {
                if route.insert(family, index).is_some() {
                    return Err(NemesisError::Overlap(family));
                }
            }
        }
        Ok(Mix { nemeses, route })
    }

    /// The standard nemeses for the faults of a test, each with its own
    /// stream derived from the seed and its family's settings, and those of
    /// `custom` (the Rust API) that claim one of the faults.
    pub fn standard(faults: &[Fault], seed: u64, settings: &FamilySettings, custom: &[NemesisFactory]) -> Result<Mix, NemesisError> {
        let stream = |family: u64| ChaCha8Rng::seed_from_u64(seed ^ (0x6e65_6d65_7369_7300 + family));
        let mut nemeses: Vec<Box<dyn Nemesis>> = Vec::new();
        let wants = |family: FaultFamily| faults.iter().any(|fault| fault.family() == family);
        if wants(FaultFamily::Kill) {
            nemeses.push(Box::new(KillNemesis::new(stream(1))));
        }
        if wants(FaultFamily::Pause) {
            nemeses.push(Box::new(PauseNemesis::new(stream(2))));
        }
        if wants(FaultFamily::Partition) {
            nemeses.push(Box::new(PartitionNemesis::new(stream(3))));
        }
        if wants(FaultFamily::Link) {
            nemeses.push(Box::new(LinkNemesis::new(stream(4), settings.link)));
        }
        if wants(FaultFamily::Power) {
            nemeses.push(Box::new(PowerNemesis::new(stream(5))));
        }
        if wants(FaultFamily::Corrupt) {
            nemeses.push(Box::new(CorruptNemesis::new(stream(9), settings.corrupt.clone())));
        }
        if wants(FaultFamily::Disk) {
            nemeses.push(Box::new(DiskNemesis::new(stream(10), settings.disk)));
        }
        if wants(FaultFamily::Clock) {
            nemeses.push(Box::new(ClockNemesis::new(stream(11), settings.clock)));
        }
        if wants(FaultFamily::Membership) {
            nemeses.push(Box::new(MembershipNemesis::new(stream(8))));
        }
        if wants(FaultFamily::Revote) {
            nemeses.push(Box::new(RevoteNemesis::new(stream(6))));
        }
        if wants(FaultFamily::FigureEight) {
            nemeses.push(Box::new(FigureEightNemesis::new(stream(7))));
        }
        for (index, factory) in custom.iter().enumerate() {
            let nemesis = factory(seed ^ (0x6e65_6d65_7369_7300 + 64 + index as u64));
            if nemesis.handles().into_iter().any(wants) {
                nemeses.push(nemesis);
            }
        }
        Mix::compose(nemeses)
    }
}

impl Nemesis for Mix {
    fn handles(&self) -> Vec<FaultFamily> {
        self.route.keys().copied().collect()
    }

    fn invoke<'a>(&'a mut self, fault: Fault, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let index = *self.route.get(&fault.family()).ok_or(NemesisError::Unhandled(fault))?;
            self.nemeses[index].invoke(fault, cluster).await
        })
    }

    fn choose(&mut self, fault: Fault, nodes: usize, leader: Option<usize>) -> Option<Targets> {
        let index = *self.route.get(&fault.family())?;
        self.nemeses[index].choose(fault, nodes, leader)
    }

    fn apply<'a>(&'a mut self, fault: Fault, targets: Targets, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let index = *self.route.get(&fault.family()).ok_or(NemesisError::Unhandled(fault))?;
            self.nemeses[index].apply(fault, targets, cluster).await
        })
    }

    /// Heals every member, even when one fails, and reports what each did.
    fn heal<'a>(&'a mut self, cluster: &'a Cluster) -> BoxFuture<'a, Result<Effect, NemesisError>> {
        Box::pin(async move {
            let mut effects = Vec::new();
            let mut first_error = None;
            for nemesis in &mut self.nemeses {
                match nemesis.heal(cluster).await {
                    Ok(Effect::Null) => {}
                    Ok(effect) => effects.push(effect),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            match first_error {
                Some(error) => Err(error),
                None if effects.is_empty() => Ok(json!("nothing to heal")),
                None if effects.len() == 1 => Ok(effects.remove(0)),
                None => Ok(json!(effects)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_refuses_two_claims_on_one_family() {
        let rng = || ChaCha8Rng::seed_from_u64(0);
        let nemeses: Vec<Box<dyn Nemesis>> = vec![Box::new(KillNemesis::new(rng())), Box::new(KillNemesis::new(rng()))];
        assert!(matches!(Mix::compose(nemeses), Err(NemesisError::Overlap(FaultFamily::Kill))));
    }

    #[test]
    fn standard_mix_claims_exactly_the_requested_families() {
        let link = LinkSettings { delay_ms: 1, jitter_ms: 1, bandwidth_bytes_per_s: 1 };
        let settings = FamilySettings { link, corrupt: CorruptSettings::default(), disk: DiskSettings::default(), clock: ClockSettings::default() };
        let faults = Fault::parse_names(&["kill-leader", "partition", "corrupt-zero"]).unwrap();
        let mix = Mix::standard(&faults, 1, &settings, &[]).unwrap();
        assert_eq!(mix.handles(), vec![FaultFamily::Kill, FaultFamily::Partition, FaultFamily::Corrupt]);
        let all = Mix::standard(&Fault::all(), 1, &settings, &[]).unwrap();
        assert_eq!(all.handles().len(), 4);
    }
}
