//! Ports for listeners of this process and of the nodes it starts. The
//! kernel picks a free port (bind to port 0); a reservation keeps it bound
//! until just before its user binds it, so nothing else on the machine
//! takes it meanwhile. Ports this process handed out recently are never
//! handed out twice, so clusters of parallel tests in one process cannot
//! collide (a proxy listener of one cluster taking the port another
//! cluster's node was about to bind: seen once in a full test run, the
//! node failed to start and the thief answered its readiness probe); a
//! collision with another process in the short release-to-bind window is
//! caught by the node failing to start, and the supervisor retries with
//! fresh ports (the failed attempt's output is moved to
//! `node-N.failed-starts.log`, out of the log the checks read).
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

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

    /// Keep the port, as a listener of this process.
    pub(crate) fn into_listener(self) -> TcpListener {
        self.listener
    }
}

/// A free 127.0.0.1 port not handed out by this process recently.
pub(crate) fn reserve() -> std::io::Result<PortReservation> {
    for _ in 0..PICK_ATTEMPTS_MAX {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
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
    Err(std::io::Error::other("no fresh port after many kernel picks"))
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
