//! The names faultline-node's `--mode` and `--bugs` flags take. The harness
//! runs the node as a program and does not link it; a test keeps these
//! lists equal to the node's own.

/// Replication modes (`--mode`).
pub const MODE_NAMES: [&str; 4] = ["raft", "sync", "semi-sync", "async"];

/// Planted bugs (`--bugs`), in the order the matrix reports them.
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

pub fn check_mode(mode: &str) -> Result<(), String> {
    let mode = mode.trim();
    match MODE_NAMES.contains(&mode) {
        true => Ok(()),
        false => Err(format!("unknown mode `{mode}` (known: {})", MODE_NAMES.join(", "))),
    }
}

pub fn check_bugs(bugs: &[String]) -> Result<(), String> {
    match bugs.iter().map(|bug| bug.trim()).find(|bug| !BUG_NAMES.contains(bug)) {
        None => Ok(()),
        Some(bug) => Err(format!("unknown bug `{bug}` (known: {})", BUG_NAMES.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_nodes_own() {
        assert_eq!(BUG_NAMES, faultline_node::bugs::BUG_NAMES);
        for mode in MODE_NAMES {
            assert_eq!(faultline_node::mode::Mode::parse(mode).map(|m| m.name()), Ok(mode));
        }
        let unknown = faultline_node::mode::Mode::parse("x").unwrap_err().to_string();
        assert!(unknown.ends_with(&format!("(known: {})", MODE_NAMES.join(", "))), "the node knows more modes: {unknown}");
        assert!(check_bugs(&["stale-read".into(), " no-fsync".into()]).is_ok());
        assert!(check_bugs(&["typo".into()]).unwrap_err().contains("unknown bug `typo`"));
        assert!(check_mode("quorum").is_err());
    }
}
