//! The variants of each fault family: which nodes a kill or power cut
//! takes, the shape of a partition, what a link, disk, clock or corrupt
//! fault does. Named on the command line as `<family>-<variant>`.
use serde::{Deserialize, Serialize};

/// Which nodes a kill takes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillTarget {
    Random,
    Leader,
    Minority,
    Majority,
}

/// Which node a pause stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PauseTarget {
    Random,
    Leader,
}

/// The shape of a network partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionMode {
    /// Two random halves (the larger one keeps a majority).
    Halves,
    /// The leader alone on one side.
    Leader,
    /// The leader and a minority of the others (`nodes / 2 - 1` of them)
    /// on one side: a leader that still has a follower to acknowledge it,
    /// as semi-synchronous replication wants, cut from the majority.
    LeaderMinority,
    /// One random node alone on one side (what `partition-leader` does, and
    /// is recorded as, on a system that cannot name its leader).
    Random,
    /// Every node sees a majority, but no two nodes see the same one.
    Ring,
    /// Two halves and one node that sees both.
    Bridge,
    /// One random node loses everything the others send it; its own sends
    /// still arrive.
    OneWay,
}

/// Which nodes lose power (everything they did not fsync is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerTarget {
    Random,
    Leader,
    Majority,
    All,
}

/// A link fault from the proxy on every link into one random node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkMode {
    Delay,
    Drop,
    Reset,
    Slow,
}

/// Damage to a killed node's files before it starts again (bit flips, a
/// truncated tail, a zeroed chunk), as Jepsen's file-corruption nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptMode {
    /// One random bit flipped in each of `nemesis.corrupt_bytes` random bytes.
    Bitflip,
    /// The last 1..=`nemesis.corrupt_bytes` bytes cut off.
    Truncate,
    /// A chunk of `nemesis.corrupt_bytes` bytes overwritten with zeroes.
    Zero,
    /// A chunk of `nemesis.corrupt_bytes` bytes taken out; what followed
    /// it moves up.
    Drop,
}

/// A disk fault from the node's lazyfs volume, for a bounded time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskMode {
    /// fsync answers EIO on one node, and what it failed to sync never
    /// reaches the disk (Linux's fsyncgate behaviour).
    FsyncEio,
    /// The same on a majority of the nodes.
    FsyncEioMajority,
    /// Writes answer EIO on one node.
    WriteEio,
    /// Writes answer ENOSPC on one node.
    Full,
    /// Every read, write and fsync on one node waits `nemesis.disk_delay`.
    Slow,
    /// One node loses power and the last page it wrote but did not sync
    /// reaches the disk torn (`nemesis.disk_tear_bytes` of it).
    TornWrite,
}

/// A clock fault through libfaketime (the wall clock only, unless
/// `nemesis.clock_fake_monotonic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Every node off by its own offset within ±`nemesis.clock_offset_max`.
    Skew,
    /// One node's clock jumps by the bound, ahead or back.
    Bump,
    /// The leader's clock jumps back by the bound.
    BumpLeader,
    /// The leader is cut off from the other nodes (its clients still reach
    /// it) and its clock jumps back by the bound; it stays so until the
    /// others elect a leader, 1.5 s more, and the fault's length. Runs alone.
    IsolateLeader,
    /// One node's clock jumps between the real time and the bound.
    Strobe,
    /// One node's clock runs at half or double speed.
    Rate,
}

/// A membership change, through the system's own procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipChange {
    /// A free slot joins with an empty disk: added as a learner, started,
    /// promoted once it caught up.
    Add,
    /// A member (the leader at times) is removed, then stopped.
    Remove,
    /// A member is removed, its disk wiped, and added back.
    Replace,
    /// A free slot is added and the leader killed while the change is in
    /// flight.
    Crash,
    /// The leader, cut off from every other node, is asked to remove all
    /// of them at once: a correct leader takes one change at a time, and
    /// one it cannot commit stays uncommitted; one that takes them all is
    /// left a majority of one, whatever the cluster's size.
    Race,
    /// A free slot is added as a learner, then it and the leader, with
    /// one voter fewer than a majority, are cut off from the rest: a
    /// learner that counts toward commit makes that side a majority.
    AddMinority,
}
