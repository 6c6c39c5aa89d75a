//! Which process opened a TCP connection, from the kernel's socket table:
//! the connecting socket's ports → its inode (/proc/net/tcp, tcp6) → the
//! registered process, or a descendant of it, holding that inode
//! (`/proc/<pid>/fd`). Used for systems whose members share one view of
//! peer addresses, where the listener alone cannot tell the source.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::faults::Endpoint;

/// Who holds the socket connected from `opener_port` to `listen_port` on
/// loopback: a node among `pids` (pid → node) and their descendants, or
/// this process (the harness's own clients, which sit on the control node
/// and are never partitioned); None when neither does. Blocking: reads /proc.
pub(crate) fn find_source(
    opener_port: u16,
    listen_port: u16,
    pids: &BTreeMap<u32, usize>,
) -> Option<Endpoint> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = fs::read_to_string(table).ok()?;
        socket_inode(&text, opener_port, listen_port)
    })?;
    let parents = parent_map(Path::new("/proc"));
    let node = pids.iter().find_map(|(pid, node)| {
        family(*pid, &parents)
            .into_iter()
            .any(|member| holds_socket(member, inode))
            .then_some(Endpoint::Node(*node))
    });
    node.or_else(|| holds_socket(std::process::id(), inode).then_some(Endpoint::Client))
}

/// The inode of the socket whose local port is `local_port` and remote
/// port is `remote_port`, from the text of /proc/net/tcp or tcp6.
pub(crate) fn socket_inode(table: &str, local_port: u16, remote_port: u16) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = port_of(fields.get(1)?)?;
        let remote = port_of(fields.get(2)?)?;
        let inode: u64 = fields.get(9)?.parse().ok()?;
        (local == local_port && remote == remote_port && inode != 0).then_some(inode)
    })
}

/// "0100007F:1F90" → 8080.
fn port_of(address: &str) -> Option<u16> {
    let (_, port) = address.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// The parent pid from the text of /proc/<pid>/stat; the command name in
/// parentheses may itself hold spaces and parentheses.
pub(crate) fn parent_of_stat(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// pid → parent pid, for every process visible in `proc`.
fn parent_map(proc: &Path) -> BTreeMap<u32, u32> {
    let Ok(entries) = fs::read_dir(proc) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
            Some((pid, parent_of_stat(&stat)?))
        })
        .collect()
}

/// `root` and all its descendants in `parents`.
pub(crate) fn family(root: u32, parents: &BTreeMap<u32, u32>) -> BTreeSet<u32> {
    let mut members = BTreeSet::from([root]);
    // Each pass adds a generation; a process tree is shallower than the
    // number of processes, which bounds the passes.
    for _ in 0..parents.len() {
        let before = members.len();
        for (child, parent) in parents {
            if members.contains(parent) {
                members.insert(*child);
            }
        }
        if members.len() == before {
            break;
        }
    }
    members
}

fn holds_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == wanted.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0
   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 20 4 30 10 -1
";

    #[test]
    fn finds_the_connecting_socket_not_the_accepted_one() {
        assert_eq!(socket_inode(TABLE, 0xA2C4, 0x1F90), Some(2222));
        assert_eq!(socket_inode(TABLE, 0x1F90, 0xA2C4), Some(3333));
        assert_eq!(socket_inode(TABLE, 0xA2C5, 0x1F90), None);
    }

    #[test]
    fn parses_parent_pid_past_odd_command_names() {
        assert_eq!(parent_of_stat("42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of_stat("garbage"), None);
    }

    #[test]
    fn family_holds_descendants_only() {
        let parents = BTreeMap::from([(2, 1), (3, 2), (4, 1), (5, 3), (6, 9)]);
        assert_eq!(family(2, &parents), BTreeSet::from([2, 3, 5]));
    }
}
