//! Ports for the nodes' own listeners. The kernel picks a free port (bind
//! to port 0); the reservation keeps it bound until just before the node is
//! launched, so nothing else on the machine takes it meanwhile. Ports this
//! process handed out recently are never handed out twice, so clusters of
//! parallel tests in one process cannot collide; a collision with another
//! process in the short release-to-bind window is caught by the node
//! failing to start, and the supervisor retries with fresh ports.
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

use super::ClusterError;

/// How many recently handed-out ports are remembered.
const RECENT_PORTS_MAX: usize = 4096;
/// Kernel picks tried before giving up on finding one not handed out yet.
const PICK_ATTEMPTS_MAX: usize = 64;

static RECENT_PORTS: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());

/// A port held bound until `release`.
#[derive(Debug)]
pub(crate) struct PortReservation {
    listener: TcpListener,
    addr: SocketAddr,
}

impl PortReservation {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Free the port for the node to bind; returns its address.
    pub(crate) fn release(self) -> SocketAddr {
        drop(self.listener);
        self.addr
    }
}

/// A free 127.0.0.1 port not handed out by this process recently.
pub(crate) fn reserve() -> Result<PortReservation, ClusterError> {
    for _ in 0..PICK_ATTEMPTS_MAX {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ClusterError::Port)?;
        let addr = listener.local_addr().map_err(ClusterError::Port)?;
        let mut recent = RECENT_PORTS.lock().unwrap_or_else(|p| p.into_inner());
        if recent.contains(&addr.port()) {
            continue;
        }
        if recent.len() == RECENT_PORTS_MAX {
            recent.pop_front();
        }
        recent.push_back(addr.port());
        return Ok(PortReservation { listener, addr });
    }
    Err(ClusterError::Port(std::io::Error::other("no fresh port after many kernel picks")))
}

/// The ports a node binds itself: client, peer, and its named peer ports.
pub(super) struct NodePorts {
    pub(super) client: PortReservation,
    pub(super) peer: PortReservation,
    pub(super) named: Vec<PortReservation>,
}

/// Client, peer and `named` further peer ports of every node, held until
/// launch.
pub(super) fn reserve_node_ports(nodes: usize, named: usize) -> Result<Vec<NodePorts>, ClusterError> {
    (0..nodes)
        .map(|_| {
            let named = (0..named).map(|_| reserve()).collect::<Result<Vec<_>, _>>()?;
            Ok(NodePorts { client: reserve()?, peer: reserve()?, named })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binds tried, 10 ms apart, before a released port counts as held.
    const RELEASE_WAIT_ROUNDS: u32 = 100;

    #[test]
    fn reservations_are_distinct_and_bound_until_released() {
        let reservations: Vec<PortReservation> = (0..50).map(|_| reserve().unwrap()).collect();
        let mut ports: Vec<u16> = reservations.iter().map(|r| r.addr().port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50);
        assert!(reservations.iter().all(|r| TcpListener::bind(r.addr()).is_err()), "a reserved port is still bound");
        // A process another test of this process spawns at the same moment
        // holds a copy of every open socket between its fork and its exec
        // (measured: the guard test's spawns made this fail 11 runs in 30):
        // a released port is free once that copy is gone, within a bound.
        let addr = reservations.into_iter().next().unwrap().release();
        let free = (0..RELEASE_WAIT_ROUNDS).any(|_| {
            let bound = TcpListener::bind(addr).is_ok();
            if !bound {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            bound
        });
        assert!(free, "a released port is free");
    }
}
