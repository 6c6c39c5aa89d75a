//! The fault proxy: every node-to-node and client-to-node TCP connection of a
//! test runs through it, so the harness can partition nodes, delay, drop,
//! reset or throttle any link, per direction, and heal it all again.
//!
//! Shape: the fault state is plain data (`faults::FaultTable`) that answers
//! "what happens to bytes sent by A to B right now"; listener and pump tasks
//! (`route`, `link`) only look that answer up, and re-look it up whenever the
//! table's epoch changes, which is how a cut also closes established
//! connections. The source of a connection is known from the listener it
//! arrived on (one listener per (source, destination) pair) or, for systems
//! whose members share one view of peer addresses, from the kernel's socket
//! table (`socket_table`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

mod error;
mod faults;
mod link;
mod route;
mod shared;
mod socket_table;

use shared::{Route, Shared};

pub use error::ProxyError;
pub use faults::{Endpoint, Grudge, LinkFault};

/// Bounds and the seed of a proxy. Per direction of a connection the proxy
/// holds one read buffer (`chunk_bytes`, grown up to `clear_read_bytes_max`
/// while the direction has no fault) and a queue of at most
/// `queue_chunks_max * chunk_bytes`, or of one grown read if a fault is
/// set while it is under way, whichever is more.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Drives jitter; each connection derives its own stream from it.
    pub seed: u64,
    /// Largest read, in bytes, forwarded as one unit while a fault is in
    /// force on the direction (what the queue and the throttle hold).
    pub chunk_bytes: usize,
    /// Largest read, in bytes, on a direction with no fault, whose bytes
    /// go straight out and are never queued: a bulk stream's read buffer
    /// grows from `chunk_bytes` to this.
    pub clear_read_bytes_max: usize,
    /// Chunks queued per direction between the reader and the (delaying,
    /// throttling) writer of a connection.
    pub queue_chunks_max: usize,
    /// Open connections allowed over all routes; more are refused.
    pub connections_max: usize,
    /// Bound on connecting to a route's target.
    pub connect_timeout_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            seed: 0,
            chunk_bytes: 64 * 1024,
            clear_read_bytes_max: 4 * 1024 * 1024,
            queue_chunks_max: 32,
            connections_max: 4096,
            connect_timeout_ms: 2_000,
        }
    }
}

/// Counters since the proxy started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStats {
    pub routes: u64,
    pub connections_accepted: u64,
    pub connections_open: u64,
    /// Closed or reset by a partition or a link fault.
    pub connections_cut: u64,
    /// Refused: over `connections_max`, or the target did not answer.
    pub connections_refused: u64,
    /// Accepted on a shared route whose source process was not found.
    pub connections_unattributed: u64,
    pub bytes_forwarded: u64,
    pub bytes_dropped: u64,
}

/// Handle to a running proxy. Cheap to clone; dropping the last clone (or
/// `shutdown`) closes every listener and connection.
#[derive(Clone)]
pub struct FaultProxy {
    handle: Arc<Handle>,
}

/// Owned by the `FaultProxy` clones only (tasks hold `Shared`), so its drop
/// means nobody can control the proxy any more.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}

impl FaultProxy {
    /// A proxy with no routes. Routes must be added inside a tokio runtime:
    /// their tasks run on the current one.
    pub fn new(config: ProxyConfig) -> Self {
        let shared = Arc::new(Shared::new(config));
        FaultProxy { handle: Arc::new(Handle { shared }) }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Listen on a fresh 127.0.0.1 port; connections accepted there are
    /// attributed to `from` and forwarded to `target`, the real address of
    /// node `to`. Returns the listening address.
    pub async fn add_route(
        &self,
        from: Endpoint,
        to: usize,
        target: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        self.listen(Some(from), to, target).await
    }

    /// For systems whose members share one view of peer addresses (etcd): a
    /// listener for node `to` where the connecting node is found from the
    /// kernel socket table (/proc/net/tcp: local port → inode → the
    /// registered pid, or a descendant of it, holding that inode). A
    /// connection whose source is not found is forwarded unaffected by
    /// faults and counted in `connections_unattributed`.
    pub async fn add_shared_route(
        &self,
        to: usize,
        target: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        self.listen(None, to, target).await
    }

    async fn listen(
        &self,
        from: Option<Endpoint>,
        to: usize,
        target: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        if !target.ip().is_loopback() {
            return Err(ProxyError::NotLoopback(target));
        }
        if self.shared().is_shut_down() {
            return Err(ProxyError::ShutDown);
        }
        // A port no node of this process is about to bind (crate::ports).
        let listener = crate::ports::reserve().map_err(ProxyError::Bind)?.into_listener();
        listener.set_nonblocking(true).map_err(ProxyError::Bind)?;
        let listener = TcpListener::from_std(listener).map_err(ProxyError::Bind)?;
        let listen = listener.local_addr().map_err(ProxyError::Bind)?;
        let route = Arc::new(Route { from, to, target: Mutex::new(target) });
        self.shared().add_route(listen, route.clone());
        tokio::spawn(route::accept_loop(self.shared().clone(), listener, route));
        Ok(listen)
    }

    /// Point the route listening on `listen` at a new target (a node that was
    /// restarted on another port). Established connections are kept.
    pub fn retarget(&self, listen: SocketAddr, target: SocketAddr) -> Result<(), ProxyError> {
        if !target.ip().is_loopback() {
            return Err(ProxyError::NotLoopback(target));
        }
        let route = self.shared().route(listen).ok_or(ProxyError::UnknownRoute(listen))?;
        *shared::lock(&route.target) = target;
        Ok(())
    }

    /// Attribute connections opened by `pid` (or its descendants) on shared
    /// routes to `node`. Re-register after a restart.
    pub fn register_pid(&self, pid: u32, node: usize) {
        self.shared().register_pid(pid, node);
    }

    /// Forget `pid` (its process is gone; the number may be reused).
    pub fn unregister_pid(&self, pid: u32) {
        self.shared().unregister_pid(pid);
    }

    /// Replace the partition: bytes from each sender to each receiver in the
    /// grudge are dropped, on every connection between them whichever side
    /// opened it; established connections of a pair cut both ways are closed
    /// and new ones closed on accept. Connections that lost bytes are closed
    /// once the drop ends, so no stream resumes with a hole in it.
    /// Client connections are never affected by partitions.
    pub fn partition(&self, grudge: &Grudge) {
        self.shared().change_faults(|table| table.partition(grudge));
    }

    /// Set the fault on bytes sent by `from` to `to` (one direction);
    /// `LinkFault::default()` clears it.
    pub fn set_link_fault(&self, from: Endpoint, to: Endpoint, fault: LinkFault) {
        self.shared().change_faults(|table| table.set_link(from, to, fault));
    }

    /// Remove the partition and every link fault.
    pub fn heal(&self) {
        self.shared().change_faults(|table| table.heal());
    }

    /// The partition and link faults in force, as data.
    pub fn faults(&self) -> (Grudge, BTreeMap<(Endpoint, Endpoint), LinkFault>) {
        let table = self.shared().faults();
        (table.grudge().clone(), table.links().clone())
    }

    pub fn stats(&self) -> ProxyStats {
        self.shared().stats()
    }

    /// Close every listener and connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared().shut_down();
    }
}
