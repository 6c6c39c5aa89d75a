//! Consistency models, by the anomalies each one rules out (after Adya and
//! Elle's `consistency-model`): a history is invalid under a model when it
//! shows an anomaly the model forbids, and compatible with every model
//! whose forbidden anomalies it does not show.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::AnomalyKind;
use AnomalyKind::*;

/// A consistency model a history of transactions is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyModel {
    ReadCommitted,
    SnapshotIsolation,
    Serializable,
    /// Serializable, and each process sees its own earlier transactions.
    StrongSessionSerializable,
    /// Serializable in an order that agrees with real time.
    StrictSerializable,
    StrongSessionSnapshotIsolation,
    /// Snapshot isolation whose snapshots agree with real time.
    StrongSnapshotIsolation,
}

/// Anomalies that no model allows: the history contradicts itself.
const ALWAYS: [AnomalyKind; 4] = [IncompatibleOrder, DuplicateElements, GarbageRead, Internal];
const READ_COMMITTED: [AnomalyKind; 5] = [G0, G1a, DirtyUpdate, G1b, G1c];
const SNAPSHOT: [AnomalyKind; 1] = [GSingle];
const SERIAL: [AnomalyKind; 2] = [GSingle, G2Item];
const PROCESS: [AnomalyKind; 4] = [G0Process, G1cProcess, GSingleProcess, G2ItemProcess];
const REALTIME: [AnomalyKind; 4] = [G0Realtime, G1cRealtime, GSingleRealtime, G2ItemRealtime];

impl ConsistencyModel {
    pub const ALL: [ConsistencyModel; 7] = [
        ConsistencyModel::ReadCommitted,
        ConsistencyModel::SnapshotIsolation,
        ConsistencyModel::Serializable,
        ConsistencyModel::StrongSessionSerializable,
        ConsistencyModel::StrictSerializable,
        ConsistencyModel::StrongSessionSnapshotIsolation,
        ConsistencyModel::StrongSnapshotIsolation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConsistencyModel::ReadCommitted => "read-committed",
            ConsistencyModel::SnapshotIsolation => "snapshot-isolation",
            ConsistencyModel::Serializable => "serializable",
            ConsistencyModel::StrongSessionSerializable => "strong-session-serializable",
            ConsistencyModel::StrictSerializable => "strict-serializable",
            ConsistencyModel::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            ConsistencyModel::StrongSnapshotIsolation => "strong-snapshot-isolation",
        }
    }

    /// Whether the model rules out `anomaly`. A process or real-time
    /// variant of a cycle is ruled out where the plain cycle is and the
    /// model orders sessions or real time; real time orders sessions too.
    pub fn forbids(self, anomaly: AnomalyKind) -> bool {
        use ConsistencyModel::*;
        if ALWAYS.contains(&anomaly) || READ_COMMITTED.contains(&anomaly) {
            return true;
        }
        let (cycles, process, realtime): (&[AnomalyKind], bool, bool) = match self {
            ReadCommitted => return false,
            SnapshotIsolation => (&SNAPSHOT, false, false),
            StrongSessionSnapshotIsolation => (&SNAPSHOT, true, false),
            StrongSnapshotIsolation => (&SNAPSHOT, true, true),
            Serializable => (&SERIAL, false, false),
            StrongSessionSerializable => (&SERIAL, true, false),
            StrictSerializable => (&SERIAL, true, true),
        };
        let plain = anomaly.plain();
        let ruled_out_cycle = plain == G0 || plain == G1c || cycles.contains(&plain);
        ruled_out_cycle
            && match anomaly {
                _ if PROCESS.contains(&anomaly) => process,
                _ if REALTIME.contains(&anomaly) => realtime,
                _ => true,
            }
    }

    /// Whether the model orders transactions by real time: then each key's
    /// writes are ordered by real time too (Elle's linearizable keys).
    pub fn orders_real_time(self) -> bool {
        matches!(self, ConsistencyModel::StrictSerializable | ConsistencyModel::StrongSnapshotIsolation)
    }

    /// `self` rules out everything `other` does.
    fn implies(self, other: ConsistencyModel) -> bool {
        AnomalyKind::ALL.iter().all(|anomaly| !other.forbids(*anomaly) || self.forbids(*anomaly))
    }

    /// The strongest models none of `anomalies` rules out: every
    /// compatible model that no other compatible model implies.
    pub fn strongest_compatible(anomalies: &[AnomalyKind]) -> Vec<ConsistencyModel> {
        let compatible: Vec<ConsistencyModel> = ConsistencyModel::ALL
            .into_iter()
            .filter(|model| anomalies.iter().all(|anomaly| !model.forbids(*anomaly)))
            .collect();
        compatible
            .iter()
            .copied()
            .filter(|model| !compatible.iter().any(|other| other != model && other.implies(*model) && !model.implies(*other)))
            .collect()
    }
}

impl fmt::Display for ConsistencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a known model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consistency model {0:?} (known: {known})", known = ConsistencyModel::ALL.map(ConsistencyModel::name).join(", "))]
pub struct UnknownConsistencyModel(pub String);

impl FromStr for ConsistencyModel {
    type Err = UnknownConsistencyModel;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ConsistencyModel::ALL
            .into_iter()
            .find(|model| model.name() == text)
            .ok_or_else(|| UnknownConsistencyModel(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::ConsistencyModel::*;
    use super::*;

    #[test]
    fn models_forbid_what_adya_and_elle_say() {
        assert!(ReadCommitted.forbids(G1c) && !ReadCommitted.forbids(GSingle));
        assert!(SnapshotIsolation.forbids(GSingle) && !SnapshotIsolation.forbids(G2Item));
        assert!(Serializable.forbids(G2Item) && !Serializable.forbids(GSingleRealtime) && !Serializable.forbids(G0Process));
        assert!(StrongSessionSerializable.forbids(G1cProcess) && !StrongSessionSerializable.forbids(G1cRealtime));
        assert!(StrictSerializable.forbids(G2ItemRealtime) && StrictSerializable.forbids(G0Process));
        assert!(!StrongSnapshotIsolation.forbids(G2ItemRealtime) && StrongSnapshotIsolation.forbids(GSingleRealtime));
        for model in ConsistencyModel::ALL {
            assert!(model.forbids(GarbageRead) && model.forbids(G1a), "{model}");
            assert_eq!(model.name().parse::<ConsistencyModel>(), Ok(model));
        }
        assert!("linearizable".parse::<ConsistencyModel>().unwrap_err().to_string().contains("strict-serializable"));
    }

    #[test]
    fn the_strongest_compatible_models_are_named() {
        assert_eq!(ConsistencyModel::strongest_compatible(&[]), vec![StrictSerializable]);
        assert_eq!(ConsistencyModel::strongest_compatible(&[GSingleRealtime]), vec![StrongSessionSerializable]);
        assert_eq!(ConsistencyModel::strongest_compatible(&[G2Item]), vec![StrongSnapshotIsolation]);
        assert_eq!(ConsistencyModel::strongest_compatible(&[GSingle]), vec![ReadCommitted]);
        assert_eq!(ConsistencyModel::strongest_compatible(&[G1c]), Vec::<ConsistencyModel>::new());
    }
}
