//! The faults a nemesis can inject, as plain data, and their names on the
//! command line and in specs (`kill`, `kill-leader`, `partition-ring`, ...).
use std::fmt;


pub use super::fault_modes::{
    ClockMode, CorruptMode, DiskMode, KillTarget, LinkMode, MembershipChange, PartitionMode, PauseTarget, PowerTarget,
};

/// One fault kind a test may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Kill(KillTarget),
    Pause(PauseTarget),
    Partition(PartitionMode),
    Link(LinkMode),
    Power(PowerTarget),
    Membership(MembershipChange),
    Corrupt(CorruptMode),
    Disk(DiskMode),
    Clock(ClockMode),
    /// The revote scenario (`revote.rs`): one voter restarted between two
    /// elections of one term.
    Revote,
    /// The revote scenario with the voter's power cut instead of a kill:
    /// what it voted but did not fsync is gone when it comes back.
    RevotePowerLoss,
    /// The figure-8 scenario (`figure8.rs`): old-term entries committed by
    /// counting, then overwritten.
    FigureEight,
    /// A fault of your own (the Rust API), injected by the nemesis that
    /// claims `FaultFamily::Custom` of the same name. Never parsed from a
    /// spec.
    Custom(&'static str),
}

/// The family of a fault: what `handles()` of one nemesis claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultFamily {
    Kill,
    Pause,
    Partition,
    Link,
    Power,
    Membership,
    Corrupt,
    Disk,
    Clock,
    Revote,
    FigureEight,
    /// A family of your own: one fault, of the same name.
    Custom(&'static str),
}

/// The families a spec names as a whole (`kill` = every kill target).
pub const FAMILY_NAMES: &str = "kill, pause, partition, link, power-loss, membership, corrupt, disk, clock";

impl FaultFamily {
    /// The built-in family a spec names (`kill`, or `revote` for the
    /// scenario's family of one); None for a single fault such as
    /// `kill-leader`, or `mix`.
    pub fn named(name: &str) -> Option<FaultFamily> {
        let family = Fault::parse_name(name).ok()?.first()?.family();
        (family.name() == name).then_some(family)
    }

    /// A number of the family's own, which seeds its schedule's stream in a
    /// concurrent nemesis: the built-in families keep their place in this
    /// enum, so a seed replays as it always did; a custom family gets a
    /// hash of its name above them.
    pub fn stream(self) -> u64 {
        match self {
            FaultFamily::Kill => 0,
            FaultFamily::Pause => 1,
            FaultFamily::Partition => 2,
            FaultFamily::Link => 3,
            FaultFamily::Power => 4,
            FaultFamily::Revote => 5,
            FaultFamily::FigureEight => 6,
            // Above every custom family's number (7 + 16 bits).
            FaultFamily::Membership => 0x1_0007,
            FaultFamily::Corrupt => 0x1_0008,
            FaultFamily::Disk => 0x1_0009,
            FaultFamily::Clock => 0x1_000a,
            // FNV-1a: stable across builds, unlike the std hasher.
            FaultFamily::Custom(name) => {
                let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                });
                7 + (hash & 0xffff)
            }
        }
    }

    /// The family's name: every fault of it is named `<family>-<target>`
    /// (the one fault of `revote` or `figure-8` is named as its family), and its own heal
    /// in a concurrent schedule is `heal-<family>`.
    pub fn name(self) -> &'static str {
        match self {
            FaultFamily::Kill => "kill",
            FaultFamily::Pause => "pause",
            FaultFamily::Partition => "partition",
            FaultFamily::Link => "link",
            FaultFamily::Power => "power-loss",
            FaultFamily::Membership => "membership",
            FaultFamily::Corrupt => "corrupt",
            FaultFamily::Disk => "disk",
            FaultFamily::Clock => "clock",
            FaultFamily::Revote => "revote",
            FaultFamily::FigureEight => "figure-8",
            FaultFamily::Custom(name) => name,
        }
    }
}

const KILLS: [Fault; 4] = [
    Fault::Kill(KillTarget::Random),
    Fault::Kill(KillTarget::Leader),
    Fault::Kill(KillTarget::Minority),
    Fault::Kill(KillTarget::Majority),
];
const PAUSES: [Fault; 2] = [Fault::Pause(PauseTarget::Random), Fault::Pause(PauseTarget::Leader)];
const PARTITIONS: [Fault; 6] = [
    Fault::Partition(PartitionMode::Halves),
    Fault::Partition(PartitionMode::Leader),
    Fault::Partition(PartitionMode::LeaderMinority),
    Fault::Partition(PartitionMode::Ring),
    Fault::Partition(PartitionMode::Bridge),
    Fault::Partition(PartitionMode::OneWay),
];
const LINKS: [Fault; 4] = [
    Fault::Link(LinkMode::Delay),
    Fault::Link(LinkMode::Drop),
    Fault::Link(LinkMode::Reset),
    Fault::Link(LinkMode::Slow),
];
/// The scripted scenarios: an odd cluster, the whole network to themselves.
const SCRIPTED: [Fault; 3] = [Fault::Revote, Fault::RevotePowerLoss, Fault::FigureEight];
const MEMBERSHIPS: [Fault; 6] = [
    Fault::Membership(MembershipChange::Add),
    Fault::Membership(MembershipChange::Remove),
    Fault::Membership(MembershipChange::Replace),
    Fault::Membership(MembershipChange::Crash),
    Fault::Membership(MembershipChange::Race),
    Fault::Membership(MembershipChange::AddMinority),
];
const CORRUPTS: [Fault; 4] = [
    Fault::Corrupt(CorruptMode::Bitflip),
    Fault::Corrupt(CorruptMode::Truncate),
    Fault::Corrupt(CorruptMode::Zero),
    Fault::Corrupt(CorruptMode::Drop),
];
const DISKS: [Fault; 6] = [
    Fault::Disk(DiskMode::FsyncEio),
    Fault::Disk(DiskMode::FsyncEioMajority),
    Fault::Disk(DiskMode::WriteEio),
    Fault::Disk(DiskMode::Full),
    Fault::Disk(DiskMode::Slow),
    Fault::Disk(DiskMode::TornWrite),
];
const CLOCKS: [Fault; 6] = [
    Fault::Clock(ClockMode::Skew),
    Fault::Clock(ClockMode::Bump),
    Fault::Clock(ClockMode::BumpLeader),
    Fault::Clock(ClockMode::IsolateLeader),
    Fault::Clock(ClockMode::Strobe),
    Fault::Clock(ClockMode::Rate),
];
/// Faults no family or `mix` stands for, named on their own.
const BY_NAME_ONLY: [Fault; 1] = [Fault::Partition(PartitionMode::Random)];
const POWER_LOSSES: [Fault; 4] = [
    Fault::Power(PowerTarget::Random),
    Fault::Power(PowerTarget::Leader),
    Fault::Power(PowerTarget::Majority),
    Fault::Power(PowerTarget::All),
];

impl Fault {
    pub fn family(self) -> FaultFamily {
        match self {
            Fault::Kill(_) => FaultFamily::Kill,
            Fault::Pause(_) => FaultFamily::Pause,
            Fault::Partition(_) => FaultFamily::Partition,
            Fault::Link(_) => FaultFamily::Link,
            Fault::Power(_) => FaultFamily::Power,
            Fault::Membership(_) => FaultFamily::Membership,
            Fault::Corrupt(_) => FaultFamily::Corrupt,
            Fault::Disk(_) => FaultFamily::Disk,
            Fault::Clock(_) => FaultFamily::Clock,
            Fault::Revote | Fault::RevotePowerLoss => FaultFamily::Revote,
            Fault::FigureEight => FaultFamily::FigureEight,
            Fault::Custom(name) => FaultFamily::Custom(name),
        }
    }

    /// The name in specs, flags and the history's `f` (`kill-leader`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill(KillTarget::Random) => "kill-random",
            Fault::Kill(KillTarget::Leader) => "kill-leader",
            Fault::Kill(KillTarget::Minority) => "kill-minority",
            Fault::Kill(KillTarget::Majority) => "kill-majority",
            Fault::Pause(PauseTarget::Random) => "pause-random",
            Fault::Pause(PauseTarget::Leader) => "pause-leader",
            Fault::Partition(PartitionMode::Halves) => "partition-halves",
            Fault::Partition(PartitionMode::Leader) => "partition-leader",
            Fault::Partition(PartitionMode::LeaderMinority) => "partition-leader-minority",
            Fault::Partition(PartitionMode::Random) => "partition-random",
            Fault::Partition(PartitionMode::Ring) => "partition-ring",
            Fault::Partition(PartitionMode::Bridge) => "partition-bridge",
            Fault::Partition(PartitionMode::OneWay) => "partition-one-way",
            Fault::Link(LinkMode::Delay) => "link-delay",
            Fault::Link(LinkMode::Drop) => "link-drop",
            Fault::Link(LinkMode::Reset) => "link-reset",
            Fault::Link(LinkMode::Slow) => "link-slow",
            Fault::Power(PowerTarget::Random) => "power-loss-random",
            Fault::Power(PowerTarget::Leader) => "power-loss-leader",
            Fault::Power(PowerTarget::Majority) => "power-loss-majority",
            Fault::Power(PowerTarget::All) => "power-loss-all",
            Fault::Membership(MembershipChange::Add) => "membership-add",
            Fault::Membership(MembershipChange::Remove) => "membership-remove",
            Fault::Membership(MembershipChange::Replace) => "membership-replace",
            Fault::Membership(MembershipChange::Crash) => "membership-crash",
            Fault::Membership(MembershipChange::Race) => "membership-race",
            Fault::Membership(MembershipChange::AddMinority) => "membership-add-minority",
            Fault::Corrupt(CorruptMode::Bitflip) => "corrupt-bitflip",
            Fault::Corrupt(CorruptMode::Truncate) => "corrupt-truncate",
            Fault::Corrupt(CorruptMode::Zero) => "corrupt-zero",
            Fault::Corrupt(CorruptMode::Drop) => "corrupt-drop",
            Fault::Disk(DiskMode::FsyncEio) => "disk-fsync-eio",
            Fault::Disk(DiskMode::FsyncEioMajority) => "disk-fsync-eio-majority",
            Fault::Disk(DiskMode::WriteEio) => "disk-write-eio",
            Fault::Disk(DiskMode::Full) => "disk-full",
            Fault::Disk(DiskMode::Slow) => "disk-slow",
            Fault::Disk(DiskMode::TornWrite) => "disk-torn-write",
            Fault::Clock(ClockMode::Skew) => "clock-skew",
            Fault::Clock(ClockMode::Bump) => "clock-bump",
            Fault::Clock(ClockMode::BumpLeader) => "clock-bump-leader",
            Fault::Clock(ClockMode::IsolateLeader) => "clock-isolate-leader",
            Fault::Clock(ClockMode::Strobe) => "clock-strobe",
            Fault::Clock(ClockMode::Rate) => "clock-rate",
            Fault::Revote => "revote",
            Fault::RevotePowerLoss => "revote-power-loss",
            Fault::FigureEight => "figure-8",
            Fault::Custom(name) => name,
        }
    }

    /// Every fault `mix` (or `all`) stands for, in a fixed order: all but
    /// power loss and disk faults, which need FUSE and root, clock faults,
    /// which need libfaketime and a system it reaches, file corruption, which a
    /// correct system answers by refusing to start, membership changes, which
    /// need a system that can make them, and the scripted scenarios
    /// (revote, figure-8), which need an odd cluster and own the whole
    /// network while they run; those are asked for by name.
    pub fn all() -> Vec<Fault> {
        KILLS.into_iter().chain(PAUSES).chain(PARTITIONS).chain(LINKS).collect()
    }

    /// Every single fault, power loss and the scripted scenarios included.
    pub fn every() -> Vec<Fault> {
        Fault::all().into_iter().chain(POWER_LOSSES).chain(MEMBERSHIPS).chain(CORRUPTS).chain(DISKS).chain(CLOCKS).chain(SCRIPTED).chain(BY_NAME_ONLY).collect()
    }

    /// Served through the nodes' lazyfs volumes (FUSE, root): power loss
    /// (the revote scenario's too) and disk faults.
    pub fn needs_volumes(self) -> bool {
        self == Fault::RevotePowerLoss || matches!(self.family(), FaultFamily::Power | FaultFamily::Disk)
    }

    /// Aimed at the leader (`kill-leader`, `partition-leader`, ...).
    pub fn is_leader_targeted(self) -> bool {
        matches!(
            self,
            Fault::Kill(KillTarget::Leader)
                | Fault::Pause(PauseTarget::Leader)
                | Fault::Partition(PartitionMode::Leader | PartitionMode::LeaderMinority)
                | Fault::Power(PowerTarget::Leader)
                | Fault::Clock(ClockMode::BumpLeader | ClockMode::IsolateLeader)
        )
    }

    /// Stops the nodes it targets, or makes them stop on their own (a disk
    /// error), one node or a minority at a time: with others in force it
    /// may leave fewer than a majority running, which
    /// `nemesis.keep_majority_running` forbids.
    pub fn stops_a_minority(self) -> bool {
        matches!(
            self,
            Fault::Kill(KillTarget::Random | KillTarget::Leader | KillTarget::Minority)
                | Fault::Pause(_)
                | Fault::Power(PowerTarget::Random | PowerTarget::Leader)
                | Fault::Disk(DiskMode::FsyncEio | DiskMode::WriteEio | DiskMode::Full | DiskMode::TornWrite)
                | Fault::Membership(MembershipChange::Crash)
        )
    }

    /// Runs alone beside other families (`nemesis.concurrent`): a scripted
    /// scenario, or a race staged behind a cut of its own
    /// (`membership-race`, `membership-add-minority`,
    /// `clock-isolate-leader`). Each depends on the
    /// leader it cut off staying up and on the other side electing; with
    /// every family at once, a kill or power cut of that leader a moment
    /// later undid most of them (measured: `promote-before-caught-up`
    /// caught in 1 of 8 runs that way, 6 of 8 with the races alone).
    pub fn runs_alone(self) -> bool {
        self.is_scripted()
            || matches!(
                self,
                Fault::Membership(MembershipChange::Race | MembershipChange::AddMinority) | Fault::Clock(ClockMode::IsolateLeader)
            )
    }

    /// A scripted scenario (revote, figure-8): it needs an odd cluster and
    /// sets the whole network itself while it runs.
    pub fn is_scripted(self) -> bool {
        SCRIPTED.contains(&self)
    }

    /// What this fault does on a system that cannot name its leader, named
    /// so: a leader-targeted fault hits a random node there, and the history
    /// says so.
    pub fn without_leader(self) -> Fault {
        match self {
            Fault::Kill(KillTarget::Leader) => Fault::Kill(KillTarget::Random),
            Fault::Pause(PauseTarget::Leader) => Fault::Pause(PauseTarget::Random),
            Fault::Partition(PartitionMode::Leader) => Fault::Partition(PartitionMode::Random),
            Fault::Partition(PartitionMode::LeaderMinority) => Fault::Partition(PartitionMode::Halves),
            Fault::Power(PowerTarget::Leader) => Fault::Power(PowerTarget::Random),
            Fault::Clock(ClockMode::BumpLeader | ClockMode::IsolateLeader) => Fault::Clock(ClockMode::Bump),
            other => other,
        }
    }

    /// The fewest nodes this fault makes sense on.
    pub fn nodes_min(self) -> usize {
        match self {
            Fault::Kill(KillTarget::Minority | KillTarget::Majority) => 3,
            Fault::Power(PowerTarget::Majority) | Fault::Disk(DiskMode::FsyncEioMajority) => 3,
            Fault::Disk(_) => 1,
            Fault::Power(_) => 1,
            Fault::Partition(PartitionMode::Ring | PartitionMode::Bridge) => 3,
            Fault::Revote | Fault::RevotePowerLoss | Fault::FigureEight | Fault::Membership(_) => 3,
            Fault::Clock(ClockMode::IsolateLeader) => 3,
            Fault::Partition(_) | Fault::Link(_) => 2,
            Fault::Kill(_) | Fault::Pause(_) | Fault::Corrupt(_) | Fault::Clock(_) | Fault::Custom(_) => 1,
        }
    }

    /// Expand one name from a spec or `--nemesis`: a single fault
    /// (`kill-leader`), a family (`kill` = every kill target), `mix`/`all`
    /// (everything) or `none`.
    pub fn parse_name(name: &str) -> Result<Vec<Fault>, String> {
        let name = name.trim();
        let family: Option<&[Fault]> = match name {
            "kill" => Some(&KILLS),
            "pause" => Some(&PAUSES),
            "partition" => Some(&PARTITIONS),
            "link" => Some(&LINKS),
            "power-loss" => Some(&POWER_LOSSES),
            "membership" => Some(&MEMBERSHIPS),
            "corrupt" => Some(&CORRUPTS),
            "disk" => Some(&DISKS),
            "clock" => Some(&CLOCKS),
            _ => None,
        };
        if let Some(faults) = family {
            return Ok(faults.to_vec());
        }
        match name {
            "mix" | "all" => return Ok(Fault::all()),
            "none" => return Ok(Vec::new()),
            _ => {}
        }
        Fault::every().into_iter().find(|fault| fault.name() == name).map(|f| vec![f]).ok_or_else(|| {
            format!(
                "unknown nemesis {name:?} (expected {FAMILY_NAMES}, mix, none, or one of {})",
                Fault::every().iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Expand a list of names, dropping duplicates, keeping first-seen order.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<Fault>, String> {
        let mut faults = Vec::new();
        for name in names {
            for fault in Fault::parse_name(name.as_ref())? {
                if !faults.contains(&fault) {
                    faults.push(fault);
                }
            }
        }
        Ok(faults)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_families_expand() {
        for fault in Fault::every() {
            assert_eq!(Fault::parse_name(fault.name()).unwrap(), vec![fault]);
        }
        assert_eq!(Fault::parse_name("kill").unwrap().len(), 4);
        assert_eq!(Fault::parse_name("power-loss").unwrap().len(), 4);
        assert_eq!(Fault::parse_name("mix").unwrap().len(), 16);
        assert!(Fault::parse_name("mix").unwrap().iter().all(|f| f.family() != FaultFamily::Power), "mix needs no root");
        assert!(!Fault::parse_name("mix").unwrap().contains(&Fault::Revote), "revote is asked for by name");
        assert_eq!(Fault::parse_name("membership").unwrap().len(), 6);
        assert_eq!(Fault::parse_name("corrupt").unwrap().len(), 4);
        assert_eq!(Fault::parse_name("disk").unwrap().len(), 6);
        assert_eq!(Fault::parse_name("clock").unwrap().len(), 6);
        assert!(Fault::parse_name("mix").unwrap().iter().all(|f| f.family() != FaultFamily::Clock), "clock needs libfaketime");
        assert!(Fault::parse_name("mix").unwrap().iter().all(|f| !f.needs_volumes()), "mix needs no root");
        assert!(Fault::parse_name("mix").unwrap().iter().all(|f| f.family() != FaultFamily::Corrupt), "corrupt is asked for by name");
        assert!(Fault::parse_name("mix").unwrap().iter().all(|f| f.family() != FaultFamily::Membership));
        assert_eq!(Fault::parse_name("revote").unwrap(), [Fault::Revote], "the family's own name is the kill variant");
        assert_eq!(Fault::parse_name("revote-power-loss").unwrap(), [Fault::RevotePowerLoss]);
        assert!(Fault::RevotePowerLoss.needs_volumes() && Fault::RevotePowerLoss.is_scripted() && !Fault::Revote.needs_volumes());
        let alone: Vec<&str> = Fault::every().into_iter().filter(|fault| fault.runs_alone()).map(Fault::name).collect();
        assert_eq!(alone, ["membership-race", "membership-add-minority", "clock-isolate-leader", "revote", "revote-power-loss", "figure-8"], "the scenarios and the staged races");
        assert!(!Fault::parse_name("mix").unwrap().contains(&Fault::FigureEight), "figure-8 is asked for by name");
        assert!(Fault::parse_name("none").unwrap().is_empty());
        let faults = Fault::parse_names(&["kill", "kill-leader", "pause-leader"]).unwrap();
        assert_eq!(faults.len(), 5, "duplicates are dropped");
        for fault in Fault::every() {
            let family = fault.family().name();
            assert!(fault.name() == family || fault.name().starts_with(&format!("{family}-")), "{fault}");
        }
        let error = Fault::parse_name("explode").unwrap_err();
        assert!(error.contains("unknown nemesis \"explode\""), "{error}");
    }
}
