//! State shared by the proxy handle and all its tasks: the fault table with
//! its change epoch, the routes, the pid registry and the counters.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::watch;

use super::faults::{Endpoint, FaultTable, LinkFault, Verdict};
use super::{ProxyConfig, ProxyStats};

/// One listener: where its connections come from and go to.
#[derive(Debug)]
pub(crate) struct Route {
    /// None: a shared route; the source is looked up per connection.
    pub from: Option<Endpoint>,
    pub to: usize,
    pub target: Mutex<SocketAddr>,
}

impl Route {
    pub(crate) fn target(&self) -> SocketAddr {
        *lock(&self.target)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub routes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_cut: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_unattributed: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub bytes_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ProxyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProxyStats {
            routes: get(&self.routes),
            connections_accepted: get(&self.connections_accepted),
            connections_open: get(&self.connections_open),
            connections_cut: get(&self.connections_cut),
            connections_refused: get(&self.connections_refused),
            connections_unattributed: get(&self.connections_unattributed),
            bytes_forwarded: get(&self.bytes_forwarded),
            bytes_dropped: get(&self.bytes_dropped),
        }
    }
}

pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub counters: Counters,
    faults: RwLock<FaultTable>,
    /// Bumped on every fault change so connections re-judge themselves.
    epoch: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    routes: Mutex<BTreeMap<SocketAddr, Arc<Route>>>,
    pids: Mutex<BTreeMap<u32, usize>>,
    connection_count: AtomicU64,
}

/// Locks never guard code that can panic halfway through a change, so a
/// poisoned lock still holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(config: ProxyConfig) -> Self {
        assert!(config.chunk_bytes > 0, "proxy chunk_bytes must be positive");
        assert!(config.queue_chunks_max > 0, "proxy queue_chunks_max must be positive");
        Shared {
            config,
            counters: Counters::default(),
            faults: RwLock::new(FaultTable::default()),
            epoch: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            routes: Mutex::new(BTreeMap::new()),
            pids: Mutex::new(BTreeMap::new()),
            connection_count: AtomicU64::new(0),
        }
    }

    pub(crate) fn change_faults(&self, change: impl FnOnce(&mut FaultTable)) {
        {
            let mut table = self.faults.write().unwrap_or_else(|p| p.into_inner());
            change(&mut table);
        }
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    pub(crate) fn faults(&self) -> FaultTable {
        self.faults.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The fault on bytes sent `from` → `to`; an unattributed side has none.
    pub(crate) fn direction(&self, from: Option<Endpoint>, to: Option<Endpoint>) -> LinkFault {
        match (from, to) {
            (Some(from), Some(to)) => {
                self.faults.read().unwrap_or_else(|p| p.into_inner()).direction(from, to)
            }
            _ => LinkFault::default(),
        }
    }

    pub(crate) fn verdict(&self, a: Option<Endpoint>, b: Option<Endpoint>) -> Verdict {
        match (a, b) {
            (Some(a), Some(b)) => self.faults.read().unwrap_or_else(|p| p.into_inner()).verdict(a, b),
            _ => Verdict::Open,
        }
    }

    pub(crate) fn subscribe_faults(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    pub(crate) fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn add_route(&self, listen: SocketAddr, route: Arc<Route>) {
        lock(&self.routes).insert(listen, route);
        Counters::add(&self.counters.routes, 1);
    }

    pub(crate) fn route(&self, listen: SocketAddr) -> Option<Arc<Route>> {
        lock(&self.routes).get(&listen).cloned()
    }

    pub(crate) fn register_pid(&self, pid: u32, node: usize) {
        lock(&self.pids).insert(pid, node);
    }

    pub(crate) fn unregister_pid(&self, pid: u32) {
        lock(&self.pids).remove(&pid);
    }

    pub(crate) fn pids(&self) -> BTreeMap<u32, usize> {
        lock(&self.pids).clone()
    }

    /// A fresh number per connection, to derive its jitter stream.
    pub(crate) fn next_connection(&self) -> u64 {
        self.connection_count.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> ProxyStats {
        self.counters.snapshot()
    }
}
