//! Cleanup on SIGINT and SIGTERM: kill and reap the nodes, close the proxy,
//! then exit with 128 + the signal number, as a shell would report it.
use tokio::signal::unix::{signal, SignalKind};

use super::{Cluster, ClusterError};

pub(super) fn install(cluster: Cluster) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let listen_error = |source| ClusterError::Spawn { node: 0, program: "signal handler".into(), source };
    let mut terminate = signal(SignalKind::terminate()).map_err(listen_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(listen_error)?;
    Ok(tokio::spawn(async move {
        let code = tokio::select! {
            _ = terminate.recv() => 128 + 15,
            _ = interrupt.recv() => 128 + 2,
        };
        cluster.shutdown().await;
        std::process::exit(code);
    }))
}
