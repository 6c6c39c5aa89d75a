//! Planted bugs: named switches, all off by default, each flipping exactly
//! one safety decision of the node, so `faultline matrix` can prove the
//! harness catches it. The table of which fault exposes which bug lives in
//! cluster-node/README.md ("Planted bugs").
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The set of planted bugs a node runs with; `Bugs::default()` is the
/// correct node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bugs {
    /// A put/delete is acknowledged once it is in the leader's own log,
    /// before a quorum holds it.
    pub ack_before_commit: bool,
    /// Any node serves a read from its local state, leader or not.
    pub stale_read: bool,
    /// A node that believes it leads serves reads from local state without
    /// confirming leadership with a quorum, trusting a lease that outlives
    /// the followers' election timeout (three of the longest), as a lease
    /// with no clock bound does.
    pub lease_read: bool,
    /// Votes are granted without the log up-to-dateness check (Raft §5.4.1).
    pub vote_without_log_check: bool,
    /// The vote is not restored at restart: a node can vote twice in a term.
    pub forget_vote: bool,
    /// The leader commits entries of earlier terms by counting replicas
    /// (Raft paper, figure 8).
    pub commit_old_term: bool,
    /// The WAL is never fsynced; acknowledgements rest on the page cache.
    pub no_fsync: bool,
    /// Node 2, while a follower, skips applying every seventh entry: its
    /// state silently diverges from the others' (no client reads it, since
    /// reads go to the leader), which only a comparison of replicas finds.
    pub corrupt_replica: bool,
    /// A learner counts toward commit as if it had been promoted the moment
    /// it joined, and may be promoted before it caught up: an entry held by
    /// the leader and the learner alone commits, and the voters that lack
    /// it elect a leader without it once the leader dies.
    #[serde(default)]
    pub promote_before_caught_up: bool,
    /// The leader accepts a membership change while an earlier one is not
    /// committed: two changes in flight can form disjoint majorities.
    #[serde(default)]
    pub concurrent_changes: bool,
    /// The leader answers a txn's `get`s from its applied state when the
    /// request arrives, before the txn's entry commits (each `get` sees the
    /// txn's own earlier writes), and proposes only the writes (`cas`
    /// included, checked when they apply) as one entry: two txns that read a key and then write it both read the old
    /// value (lost update, G-single).
    #[serde(default)]
    pub txn_read_uncommitted: bool,
    /// A txn of n > 1 micro-ops is proposed one micro-op at a time, each
    /// part once the previous one applied, and answered when the last one
    /// applies: other txns see half of it (fractured reads, G1c), and a
    /// leader lost between parts, or a `cas` part that fails, leaves half
    /// of it applied.
    #[serde(default)]
    pub txn_non_atomic: bool,
    /// At recovery, data that fails its checksum is used anyway (the
    /// correct node refuses to start): a WAL record whose header checksum
    /// fails is trusted for its length when that length is in range and
    /// fits in the file, a payload whose checksum fails is decoded anyway,
    /// and only a payload that does not decode at all is skipped, reading
    /// on after it; the snapshot's checksum is ignored the same way. A torn
    /// tail is still cut off as by the correct node. Exposed by faultline's
    /// `corrupt` nemesis (bit flips in a killed node's WAL files before it
    /// restarts): a flipped bit in a stored value becomes a value the node
    /// serves, which no client wrote.
    #[serde(default)]
    pub wal_ignore_crc: bool,
    /// A failed fsync (of the WAL or of a snapshot) is logged as a warning
    /// and the node carries on as if it had succeeded, acknowledging writes
    /// that are not durable (the correct node stops: after a failed fsync
    /// the kernel may already have dropped the pages, so retrying proves
    /// nothing, as PostgreSQL learned in "fsyncgate"). A failed write still
    /// stops the node, and so does a failed fsync of the WAL's directory
    /// when a new segment is created. Exposed by the
    /// disk-fault nemesis making fsync answer EIO followed by a power cut:
    /// the lazyfs layer never writes pages whose fsync failed, so the
    /// acknowledged writes are gone.
    #[serde(default)]
    pub fsync_error_ignored: bool,
    /// The leader serves reads from local state, with no quorum round,
    /// while it holds a lease kept on the wall clock: stamped with
    /// `SystemTime::now()` when a quorum answers it and lasting a bit less
    /// than the followers' shortest election wait, checked against
    /// `SystemTime::now()` at each read (the correct node reads no wall
    /// clock). The lease outlives a check-quorum step-down in the same
    /// term, as it may with honest clocks. Exposed by a clock bump back
    /// (or a slow clock) on the leader and a partition isolating it: the
    /// lease lasts N s longer in real time, and the isolated node serves
    /// stale reads while the majority's new leader takes writes.
    #[serde(default)]
    pub lease_wallclock: bool,
}

impl Bugs {
    /// What a failed fsync of `path` (`what`: `WAL`, `snapshot`) comes to:
    /// the error, for the caller to stop on; under the planted
    /// `fsync-error-ignored` bug, a warning and success, wherever the node
    /// fsyncs.
    pub fn fsync_result(&self, result: std::io::Result<()>, what: &str, path: &Path) -> std::io::Result<()> {
        match result {
            Err(error) if self.fsync_error_ignored => {
                tracing::warn!(path = %path.display(), %error, "{what} fsync failed; carrying on as if it succeeded (planted bug fsync-error-ignored)");
                Ok(())
            }
            other => other,
        }
    }
}

/// Every switch name, in the order the matrix reports them.
pub const BUG_NAMES: [&str; 15] = [
    "ack-before-commit",
    "stale-read",
    "lease-read",
    "vote-without-log-check",
    "forget-vote",
    "commit-old-term",
    "no-fsync",
    "corrupt-replica",
    "promote-before-caught-up",
    "concurrent-changes",
    "txn-read-uncommitted",
    "txn-non-atomic",
    "wal-ignore-crc",
    "fsync-error-ignored",
    "lease-wallclock",
];

/// A name in `--bugs` that is not a known switch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug `{0}` (known: {known})", known = BUG_NAMES.join(", "))]
pub struct UnknownBug(pub String);

impl Bugs {
    /// The planted `corrupt-replica` bug: node 2, as a follower, drops
    /// every seventh entry from its state.
    pub fn drops_entry(&self, node_id: u64, is_leader: bool, index: u64) -> bool {
        self.corrupt_replica && node_id == 2 && !is_leader && index % 7 == 0
    }

    /// Parses a comma-separated list of switch names; empty means none.
    pub fn parse(text: &str) -> Result<Bugs, UnknownBug> {
        let mut bugs = Bugs::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            *bugs
                .switch(name)
                .ok_or_else(|| UnknownBug(name.to_string()))? = true;
        }
        Ok(bugs)
    }

    fn switch(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "ack-before-commit" => &mut self.ack_before_commit,
            "stale-read" => &mut self.stale_read,
            "lease-read" => &mut self.lease_read,
            "vote-without-log-check" => &mut self.vote_without_log_check,
            "forget-vote" => &mut self.forget_vote,
            "commit-old-term" => &mut self.commit_old_term,
            "no-fsync" => &mut self.no_fsync,
            "corrupt-replica" => &mut self.corrupt_replica,
            "promote-before-caught-up" => &mut self.promote_before_caught_up,
            "concurrent-changes" => &mut self.concurrent_changes,
            "txn-read-uncommitted" => &mut self.txn_read_uncommitted,
            "txn-non-atomic" => &mut self.txn_non_atomic,
            "wal-ignore-crc" => &mut self.wal_ignore_crc,
            "fsync-error-ignored" => &mut self.fsync_error_ignored,
            "lease-wallclock" => &mut self.lease_wallclock,
            _ => return None,
        })
    }

    /// True if any switch is on (the node logs it loudly at startup).
    pub fn any(&self) -> bool {
        *self != Bugs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fsync_is_an_error_unless_the_bug_ignores_it() {
        let eio = || Err(std::io::Error::from_raw_os_error(5));
        let path = Path::new("/data/snapshot.bin");
        assert!(Bugs::default().fsync_result(eio(), "snapshot", path).is_err(), "the correct node stops");
        let ignoring = Bugs::parse("fsync-error-ignored").unwrap();
        assert!(ignoring.fsync_result(eio(), "snapshot", path).is_ok(), "the planted bug carries on");
        assert!(ignoring.fsync_result(Ok(()), "WAL", path).is_ok());
    }

    #[test]
    fn every_name_parses_to_its_own_switch() {
        let mut seen = Vec::new();
        for name in BUG_NAMES {
            let bugs = Bugs::parse(name).unwrap();
            assert!(bugs.any(), "{name} switched nothing on");
            assert!(!seen.contains(&bugs), "{name} shares a switch");
            seen.push(bugs);
        }
        let all = Bugs::parse(&BUG_NAMES.join(",")).unwrap();
        assert!(all.ack_before_commit && all.no_fsync && all.forget_vote);
        assert!(all.txn_read_uncommitted && all.txn_non_atomic);
        assert!(all.wal_ignore_crc && all.fsync_error_ignored);
        let one = Bugs::parse("txn-non-atomic").unwrap();
        assert!(one.txn_non_atomic && !one.txn_read_uncommitted);
        let disk = Bugs::parse("wal-ignore-crc, fsync-error-ignored").unwrap();
        assert!(disk.wal_ignore_crc && disk.fsync_error_ignored && !disk.no_fsync);
        let clock = Bugs::parse("lease-wallclock").unwrap();
        assert!(clock.lease_wallclock && !clock.lease_read);
        assert!(all.lease_wallclock);
    }

    #[test]
    fn switches_added_later_default_to_off_when_absent() {
        let old = r#"{"ack_before_commit":true,"stale_read":false,"lease_read":false,"vote_without_log_check":false,"forget_vote":false,"commit_old_term":false,"no_fsync":false,"corrupt_replica":false}"#;
        let bugs: Bugs = serde_json::from_str(old).unwrap();
        assert_eq!(bugs, Bugs::parse("ack-before-commit").unwrap());
    }

    #[test]
    fn empty_is_correct_and_unknown_is_an_error() {
        assert_eq!(Bugs::parse("").unwrap(), Bugs::default());
        assert_eq!(Bugs::parse(" , ").unwrap(), Bugs::default());
        assert_eq!(
            Bugs::parse("stale-read,typo"),
            Err(UnknownBug("typo".to_string()))
        );
    }
}
