//! The node's command line (`LowArgs`-style: what the user typed) and the
//! validated `NodeConfig` the server runs with.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::bugs::Bugs;
use crate::mode::Mode;

/// A Raft-replicated key-value node, faultline's system under test.
///
/// Clients speak newline-delimited JSON on --client-addr (see
/// docs/node-protocol.md); peers speak length-prefixed frames on --peer-addr.
#[derive(Clone, Debug, Parser)]
#[command(name = "faultline-node", version)]
pub struct Args {
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long)]
    pub id: u64,
    /// Directory for the write-ahead log and snapshots (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to serve clients on (newline-delimited JSON over TCP).
    #[arg(long)]
    pub client_addr: SocketAddr,
    /// Address to accept peer connections on.
    #[arg(long)]
    pub peer_addr: SocketAddr,
    /// Every other member as `id=host:port`, comma-separated: where this node
    /// dials to send to that peer. Empty (or omitted) for a single-node cluster.
    #[arg(long, value_parser = parse_peers, default_value = "")]
    pub peers: Peers,
    /// The voters the cluster is bootstrapped with, comma-separated ids
    /// (default: this node and every peer). Membership changes move on from
    /// there; a node started outside this list joins once the leader adds
    /// it (`member_add`), so --peers may list nodes that are not yet members.
    #[arg(long, value_parser = parse_ids, default_value = "")]
    pub voters: Ids,
    /// Cluster name; a peer naming another cluster in its handshake is dropped.
    #[arg(long, default_value = "faultline")]
    pub cluster_id: String,
    /// Seed for every random choice (mixed with --id so nodes differ).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Minimum election timeout; the actual one is drawn from [t, 2t].
    #[arg(long, default_value_t = 300)]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval; also the length of one Raft tick.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_interval_ms: u64,
    /// Take a snapshot and compact the log after this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// A client request not answered within this time gets `timeout`.
    #[arg(long, default_value_t = 2_000)]
    pub request_timeout_ms: u64,
    /// WAL segment size before rolling to a new file.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub wal_segment_bytes: u64,
    /// Replication mode: raft (default), sync, semi-sync or async. The weaker
    /// modes acknowledge writes at other points than a quorum commit, read
    /// on the primary without a quorum round, and keep an isolated primary
    /// in charge (no check-quorum), as classic primaries do (see README).
    #[arg(long, value_parser = parse_mode, default_value = "raft")]
    pub mode: Mode,
    /// Planted bugs for `faultline matrix`, comma-separated (see README's
    /// "Planted bugs" table). Never use outside tests.
    #[arg(long, value_parser = parse_bugs, default_value = "")]
    pub bugs: Bugs,
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::parse(text).map_err(|e| e.to_string())
}

fn parse_bugs(text: &str) -> Result<Bugs, String> {
    Bugs::parse(text).map_err(|e| e.to_string())
}

/// The parsed `--voters` list; empty means this node and every peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids(pub Vec<u64>);

fn parse_ids(text: &str) -> Result<Ids, String> {
    let items = text.split(',').map(str::trim).filter(|item| !item.is_empty());
    let ids = items
        .map(|item| item.parse::<u64>().map_err(|_| format!("voter id `{item}` is not a positive integer")))
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Ids(ids))
}

/// The parsed `--peers` list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers(pub Vec<(u64, SocketAddr)>);

fn parse_peers(text: &str) -> Result<Peers, String> {
    let items = text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty());
    items
        .map(parse_peer)
        .collect::<Result<Vec<_>, _>>()
        .map(Peers)
}

fn parse_peer(text: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("peer `{text}` is not `id=host:port`"))?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("peer id `{id}` is not a positive integer"))?;
    let addr: SocketAddr = addr
        .trim()
        .parse()
        .map_err(|e| format!("peer address `{addr}`: {e}"))?;
    Ok((id, addr))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--id must be positive")]
    IdZero,
    #[error("--peers lists id {0} twice or lists this node itself")]
    PeerDuplicate(u64),
    #[error("--peers lists id 0")]
    PeerZero,
    #[error("--heartbeat-interval-ms must be positive and below --election-timeout-ms")]
    Timeouts,
    #[error("--{0} must be positive")]
    LimitZero(&'static str),
    #[error("--voters names node {0}, which is neither this node nor in --peers")]
    VoterUnknown(u64),
}

/// A validated configuration: every limit checked once, here.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub args: Args,
    pub tick_ms: u64,
    pub election_timeout_ticks_min: u32,
}

impl NodeConfig {
    pub fn from_args(args: Args) -> Result<NodeConfig, ConfigError> {
        if args.id == 0 {
            return Err(ConfigError::IdZero);
        }
        let mut seen = vec![args.id];
        for &(id, _) in &args.peers.0 {
            if id == 0 {
                return Err(ConfigError::PeerZero);
            }
            if seen.contains(&id) {
                return Err(ConfigError::PeerDuplicate(id));
            }
            seen.push(id);
        }
        if let Some(unknown) = args.voters.0.iter().find(|id| !seen.contains(id)) {
            return Err(ConfigError::VoterUnknown(*unknown));
        }
        let heartbeat_ms = args.heartbeat_interval_ms;
        if heartbeat_ms == 0 || heartbeat_ms >= args.election_timeout_ms {
            return Err(ConfigError::Timeouts);
        }
        let limits = [
            ("snapshot-entries", args.snapshot_entries),
            ("request-timeout-ms", args.request_timeout_ms),
            ("wal-segment-bytes", args.wal_segment_bytes),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::LimitZero(name));
        }
        // One tick is one heartbeat interval; the election timeout is a whole number of ticks.
        let election_ticks =
            (args.election_timeout_ms / heartbeat_ms).clamp(2, u64::from(u32::MAX / 2));
        Ok(NodeConfig {
            tick_ms: heartbeat_ms,
            election_timeout_ticks_min: election_ticks as u32,
            args,
        })
    }

    /// The bootstrap voters, sorted: `--voters`, else this node and every
    /// peer.
    pub fn voters(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = match self.args.voters.0.is_empty() {
            true => self.args.peers.0.iter().map(|(id, _)| *id).chain(std::iter::once(self.args.id)).collect(),
            false => self.args.voters.0.clone(),
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn raft_config(&self) -> crate::raft::Config {
        let mut config = crate::raft::Config::new(self.args.id, self.voters());
        config.heartbeat_interval_ticks = 1;
        config.election_timeout_ticks_min = self.election_timeout_ticks_min;
        config.election_timeout_ticks_max = self.election_timeout_ticks_min * 2;
        config.entries_per_message_max = crate::transport::APPEND_ENTRIES_MAX;
        config.bugs = self.args.bugs;
        // A classic primary does not step down when it stops hearing its
        // replicas: that is how the weaker modes' split brain happens.
        config.check_quorum = self.args.mode.primary_steps_down_when_isolated();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = [
            "faultline-node",
            "--id",
            "1",
            "--data-dir",
            "/tmp/x",
            "--client-addr",
            "127.0.0.1:7001",
        ];
        let base2 = ["--peer-addr", "127.0.0.1:8001"];
        Args::try_parse_from(base.iter().chain(base2.iter()).chain(extra.iter()))
    }

    #[test]
    fn parses_peers_and_derives_ticks() {
        let a = args(&["--peers", "2=127.0.0.1:8002,3=127.0.0.1:8003"]).unwrap();
        let config = NodeConfig::from_args(a).unwrap();
        assert_eq!(config.voters(), vec![1, 2, 3]);
        assert_eq!((config.tick_ms, config.election_timeout_ticks_min), (50, 6));
        config.raft_config().validate().unwrap();
    }

    #[test]
    fn bugs_flag_takes_every_planted_bug() {
        let a = args(&["--bugs", "wal-ignore-crc,fsync-error-ignored"]).unwrap();
        assert!(a.bugs.wal_ignore_crc && a.bugs.fsync_error_ignored && !a.bugs.no_fsync);
        let all = args(&["--bugs", &crate::bugs::BUG_NAMES.join(",")]).unwrap();
        assert!(all.bugs.txn_non_atomic && all.bugs.wal_ignore_crc);
        assert!(args(&["--bugs", "wal-ignore-checksums"]).is_err());
        let clock = args(&["--bugs", "lease-wallclock"]).unwrap();
        assert!(clock.bugs.lease_wallclock && !clock.bugs.lease_read);
        assert!(all.bugs.lease_wallclock);
    }

    #[test]
    fn rejects_bad_peers_and_timeouts() {
        assert!(args(&["--peers", "2-127.0.0.1:8002"]).is_err());
        assert!(args(&["--peers", "x=127.0.0.1:8002"]).is_err());
        let dup = args(&["--peers", "2=127.0.0.1:8002,2=127.0.0.1:8003"]).unwrap();
        assert!(matches!(
            NodeConfig::from_args(dup),
            Err(ConfigError::PeerDuplicate(2))
        ));
        let me = args(&["--peers", "1=127.0.0.1:8002"]).unwrap();
        assert!(matches!(
            NodeConfig::from_args(me),
            Err(ConfigError::PeerDuplicate(1))
        ));
        let slow = args(&["--heartbeat-interval-ms", "400"]).unwrap();
        let alone = NodeConfig::from_args(args(&["--peers", ""]).unwrap()).unwrap();
        assert_eq!(alone.voters(), vec![1]);
        let joining = args(&["--peers", "2=127.0.0.1:8002,3=127.0.0.1:8003", "--voters", "2,3"]).unwrap();
        assert_eq!(NodeConfig::from_args(joining).unwrap().voters(), vec![2, 3], "node 1 joins later");
        let stranger = args(&["--peers", "2=127.0.0.1:8002", "--voters", "1,9"]).unwrap();
        let error = NodeConfig::from_args(stranger).unwrap_err().to_string();
        assert_eq!(error, "--voters names node 9, which is neither this node nor in --peers");
        assert!(args(&["--voters", "1,x"]).is_err());
        assert!(matches!(
            NodeConfig::from_args(slow),
            Err(ConfigError::Timeouts)
        ));
    }
}
