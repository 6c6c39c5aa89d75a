//! The tokio server: restores state from disk, binds the client and peer
//! ports, and hands everything to the single task that owns the Raft core.
mod client;
mod core;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::kv::{KvState, SESSIONS_MAX_DEFAULT};
use crate::raft::{Entry, EntryKind, HardState, NewError, RawNode, Restored, Snapshot, SnapshotMeta};
use crate::snapshot::{SnapshotError, SnapshotStore};
use crate::transport::{self, Outbound, RECEIVE_QUEUE_MESSAGES_MAX};
use crate::wal::{Recovered, Wal, WalError};

/// Client requests waiting for the core across all connections.
const CLIENT_QUEUE_REQUESTS_MAX: usize = 4096;
const CLIENT_CONNECTIONS_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot start the Raft core: {0}")]
    Raft(#[from] NewError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the disk held at startup.
struct DiskState {
    wal: Wal,
    snapshots: SnapshotStore,
    kv: KvState,
    restored: Restored,
    applied: (u64, u64),
}

fn open_disk(config: &NodeConfig) -> Result<DiskState, ServerError> {
    let (dir, bugs) = (&config.args.data_dir, config.args.bugs);
    let snapshots = SnapshotStore::with_bugs(dir, bugs)?;
    let stored = snapshots.load()?;
    let base = stored.as_ref().map_or((0, 0), |s| (s.index, s.term));
    let kv = match &stored {
        Some(s) => KvState::from_bytes(&s.data).map_err(|e| snapshots.data_corrupt(s.data.len(), e.to_string()))?,
        None => KvState::new(SESSIONS_MAX_DEFAULT),
    };
    let (wal, recovered) = Wal::open_with_bugs(&dir.join("wal"), base, config.args.wal_segment_bytes, bugs)?;
    // A version-1 snapshot file recorded no configuration: the bootstrap one.
    let snapshot = stored.map(|s| Snapshot {
        meta: SnapshotMeta {
            last_index: s.index,
            last_term: s.term,
            voters: if s.voters.is_empty() { config.voters() } else { s.voters },
            learners: s.learners,
        },
        data: s.data,
    });
    let mut restored = restored_state(recovered, snapshot);
    if config.args.bugs.forget_vote {
        // Planted bug: the persisted vote is ignored, so this term's vote is free again.
        restored.hard_state.vote = None;
    }
    tracing::info!(
        snapshot_index = base.0,
        entries = restored.entries.len(),
        term = restored.hard_state.term,
        commit = restored.hard_state.commit,
        "recovered from disk"
    );
    Ok(DiskState {
        wal,
        snapshots,
        kv,
        restored,
        applied: base,
    })
}

fn restored_state(recovered: Recovered, snapshot: Option<Snapshot>) -> Restored {
    let hs = recovered.hard_state;
    let hard_state = HardState {
        term: hs.term,
        vote: (hs.vote != 0).then_some(hs.vote),
        commit: hs.commit,
    };
    let entries = recovered
        .entries
        .into_iter()
        .map(|e| Entry {
            term: e.term,
            index: e.index,
            data: e.payload,
            kind: if e.config { EntryKind::Config } else { EntryKind::Normal },
        })
        .collect();
    Restored {
        hard_state,
        snapshot,
        entries,
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Runs the node until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let args = &config.args;
    let disk = tokio::task::block_in_place(|| open_disk(&config))?;
    let seed = args.seed ^ args.id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let raft = RawNode::new(config.raft_config(), seed, disk.restored)?;
    let client_listener = bind(args.client_addr).await?;
    let peer_listener = bind(args.peer_addr).await?;
    tracing::info!(id = args.id, client_addr = %args.client_addr, peer_addr = %args.peer_addr, seed, "node started");

    let (peer_tx, peer_rx) = mpsc::channel(RECEIVE_QUEUE_MESSAGES_MAX);
    let peer_ids: Vec<u64> = args.peers.0.iter().map(|(id, _)| *id).collect();
    tokio::spawn(transport::accept_loop(
        peer_listener,
        args.cluster_id.clone(),
        args.id,
        peer_ids,
        peer_tx,
    ));
    let (client_tx, client_rx) = mpsc::channel(CLIENT_QUEUE_REQUESTS_MAX);
    tokio::spawn(accept_clients(client_listener, client_tx));

    let outbound = Outbound::start(&args.cluster_id, args.id, &args.peers.0);
    if args.bugs.any() || args.mode != crate::mode::Mode::Raft {
        tracing::warn!(bugs = ?args.bugs, mode = args.mode.name(), "running with planted bugs or a weaker replication mode");
    }
    let mut core = core::Core::new(
        raft,
        disk.wal,
        disk.snapshots,
        disk.kv,
        outbound,
        disk.applied,
        args.snapshot_entries,
        Duration::from_millis(args.request_timeout_ms),
    );
    core.bugs = args.bugs;
    core.mode = args.mode;
    if args.bugs.lease_wallclock {
        let tick = Duration::from_millis(config.tick_ms);
        core.lease_wallclock = Some(core::WallClockLease::new(tick, config.election_timeout_ticks_min));
    }
    let inputs = core::Inputs {
        clients: client_rx,
        peers: peer_rx,
        tick: Duration::from_millis(config.tick_ms),
    };
    core.run(inputs, shutdown).await
}

async fn accept_clients(listener: TcpListener, core: mpsc::Sender<client::ClientRequest>) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CLIENT_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let core = core.clone();
                tokio::spawn(async move {
                    client::serve(stream, core).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "client accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
