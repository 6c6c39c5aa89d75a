//! What the detection matrix tries: each planted bug and each weaker
//! replication mode, with the workload and faults that should expose it.
//! Data, not code, in the Jepsen spirit: add a row to test a new bug.

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The bug switch or mode name, as printed.
    pub name: &'static str,
    /// `bug`, `mode` or `correct` (the false-alarm control).
    pub kind: &'static str,
    /// `cluster.bugs` of the runs (the bug switch).
    pub bugs: Vec<String>,
    /// `cluster.mode` of the runs (a weaker mode).
    pub mode: Option<String>,
    pub workload: &'static str,
    pub faults: Vec<&'static str>,
    /// Why these faults expose it; printed in the docs' table.
    pub exposed_by: &'static str,
    /// Spec fields set for this target's runs (`--set` syntax), e.g. a
    /// fault schedule the bug needs.
    pub overrides: Vec<(&'static str, &'static str)>,
}

fn bug(name: &'static str, workload: &'static str, faults: &[&'static str], exposed_by: &'static str) -> Target {
    Target {
        name,
        kind: "bug",
        bugs: vec![name.to_string()],
        mode: None,
        workload,
        faults: faults.to_vec(),
        exposed_by,
        overrides: Vec::new(),
    }
}

fn mode(name: &'static str, faults: &[&'static str], exposed_by: &'static str) -> Target {
    Target {
        name,
        kind: "mode",
        bugs: Vec::new(),
        mode: Some(name.to_string()),
        workload: "register",
        faults: faults.to_vec(),
        exposed_by,
        overrides: Vec::new(),
    }
}

/// Every bug and weaker mode, in report order.
pub fn all() -> Vec<Target> {
    vec![
        // Clients stick to the leader; only losing it makes them read elsewhere.
        bug("stale-read", "register", &["partition-leader", "kill-leader"], "clients pushed off the leader read lagging or isolated nodes"),
        bug("lease-read", "register", &["partition-leader"], "the isolated leader trusts its lease for 3 election timeouts and answers reads while the majority's new leader takes writes"),
        bug("ack-before-commit", "register", &["partition-leader", "kill-leader"], "writes acked by an isolated leader are truncated by the new one"),
        Target {
            // Overlapping faults: a leader killed while the cluster is
            // partitioned leaves lagging nodes to win the next election.
            overrides: vec![("nemesis.concurrent", "true")],
            ..bug("vote-without-log-check", "register", &["partition", "kill"], "a lagging node wins an election; followers holding committed entries beyond its log log a raft safety violation and the cluster may stall")
        },
        // Random kills never land in the window between a vote and the
        // winner's first entries; the revote scenario opens it on purpose.
        bug("forget-vote", "register", &["revote"], "a voter restarted between two elections of one term votes in both: two leaders of one term meet at heal and log a raft safety violation"),
        bug("commit-old-term", "register", &["figure-8"], "the scripted figure-8 order: old-term entries committed by counting are overwritten by the leader of the term in between; a node holding them as committed logs a raft safety violation"),
        bug("no-fsync", "register", &["power-loss-majority", "power-loss-all"], "a majority loses power: acked entries that lived only in page caches are gone from a quorum (kill -9 keeps the page cache)"),
        // Reads go to the leader, so without faults no client sees the bad
        // replica; only comparing replicas does (the no-faults run shows
        // it). Appends keep a skipped entry visible to the end.
        bug("corrupt-replica", "append", &["pause"], "n2, as a follower, skips applying every seventh entry: without faults only the convergence check sees it (same applied index, different state); once pauses make n2 the leader, clients read its holes too"),
        Target {
            // A learner exists from a membership-add until the heal
            // promotes it; concurrent partitions put it beside an isolated
            // leader, whose writes it then commits alone with it.
            // Three voters: the leader and a learner are a commit quorum.
            // Long faults, half a second apart: a learner lives for most of
            // the run, and each partition lands it beside the leader one
            // time in three (measured: 4 of 6 runs caught, seeds 11-16).
            overrides: vec![
                ("nemesis.concurrent", "true"),
                ("cluster.nodes", "3"),
                ("nemesis.fault_duration_min", "4s"),
                ("nemesis.fault_duration_max", "8s"),
                ("nemesis.heal_duration_min", "500ms"),
                ("nemesis.heal_duration_max", "1s"),
            ],
            ..bug("promote-before-caught-up", "register", &["membership-add", "partition-leader-minority", "partition-halves"], "a learner counts toward commit: an isolated leader and a learner commit writes the voters never saw, and the majority's new leader overwrites them")
        },
        // One change at a time is the rule under test: an isolated leader
        // asked to remove every other member at once.
        Target {
            // Three voters: the fewest removals that leave the leader a
            // majority of one (the default spec's five need four).
            overrides: vec![("cluster.nodes", "3")],
            ..bug("concurrent-changes", "register", &["membership-race"], "an isolated leader accepts a second removal before the first committed and becomes a majority of one; the others, still on the old configuration, elect a leader of their own: two leaders commit writes")
        },
        // Transactions need no fault: concurrency alone interleaves them.
        bug("txn-read-uncommitted", "list-append", &["none"], "a transaction's reads see the leader's applied state before its own entry commits: two transactions that read a key and append to it each miss the other's append (G-single)"),
        bug("txn-non-atomic", "list-append", &["none"], "a transaction's micro-operations commit as separate entries: a concurrent transaction sees some of its appends and not others (G-single, G1c)"),
        // A killed node's WAL gets bit flips before it starts again; the
        // appends make every damaged entry part of the final state, which
        // the other replicas do not share.
        bug("wal-ignore-crc", "append", &["corrupt-bitflip", "corrupt-zero"], "a killed node's WAL is damaged before it restarts; records whose checksums fail are replayed anyway, so the node applies appends nobody made: its state differs from the others' (convergence) and clients read the damage once it leads"),
        Target {
            // The fsync errors on a majority and the power cuts overlap.
            overrides: vec![("nemesis.concurrent", "true")],
            ..bug("fsync-error-ignored", "register", &["disk-fsync-eio-majority", "power-loss-all"], "fsync fails on a majority, which acknowledge anyway; lazyfs never writes pages whose fsync failed, so the next power cut takes acknowledged entries from a quorum")
        },
        Target {
            // The leader's clock must go back while it is cut off: the two
            // families on their own schedules, overlapping. Three nodes:
            // one follower fewer to out-vote.
            overrides: vec![("nemesis.concurrent", "true"), ("cluster.nodes", "3")],
            ..bug("lease-wallclock", "register", &["partition-leader", "clock-bump-leader"], "the isolated leader's lease is read from its wall clock; set back while it is cut off, the lease outlasts the followers' election timeout and the old leader answers reads from its own state after the new one took writes")
        },
        mode("async", &["partition-leader", "kill-leader"], "the isolated or killed primary's acked writes never reached the new primary"),
        mode("semi-sync", &["partition-halves"], "the primary and one replica on the minority side keep acking; the majority promotes a primary without those writes"),
        mode("sync", &["partition-leader"], "an isolated primary keeps serving local reads while the majority promotes a new one"),
    ]
}

/// The correct node under every fault (power loss included): any
/// `invalid` is a false alarm.
pub fn correct() -> Target {
    Target {
        name: "correct",
        kind: "correct",
        bugs: Vec::new(),
        mode: None,
        workload: "register",
        faults: vec!["kill", "pause", "partition", "link", "power-loss", "membership", "revote", "figure-8", "corrupt", "disk", "clock"],
        exposed_by: "nothing: every invalid verdict is a false alarm",
        overrides: Vec::new(),
    }
}

/// The correct node running transactions under the process and network
/// faults: any `invalid` is a false alarm of the transaction checker.
pub fn correct_transactions() -> Target {
    Target {
        name: "correct-txn",
        workload: "list-append",
        faults: vec!["kill", "pause", "partition", "power-loss", "corrupt", "disk", "clock"],
        ..correct()
    }
}

/// The correct node running the bank under the same faults.
pub fn correct_bank() -> Target {
    Target { name: "correct-bank", workload: "bank", ..correct_transactions() }
}

/// The control runs cycle through these.
pub fn controls() -> [Target; 3] {
    [correct(), correct_transactions(), correct_bank()]
}

/// Targets by name (bug switch or mode), in the order given.
pub fn select(names: &[String]) -> Result<Vec<Target>, String> {
    let known = all();
    names
        .iter()
        .map(|name| {
            known.iter().find(|t| t.name == name.as_str()).cloned().ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|t| t.name).collect();
                format!("unknown matrix target {name:?} (known: {})", names.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_planted_bug_has_a_row_and_names_are_unique() {
        let targets = all();
        for name in crate::systems::faultline_node::flags::BUG_NAMES {
            assert!(targets.iter().any(|t| t.name == name), "no matrix row for bug {name}");
        }
        let mut names: Vec<&str> = targets.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), targets.len());
        assert!(select(&["nope".to_string()]).is_err());
        assert_eq!(select(&["async".to_string()]).unwrap()[0].kind, "mode");
    }
}
