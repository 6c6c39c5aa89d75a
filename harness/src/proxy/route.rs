//! Listeners: accept a connection, attribute it to a source, judge it
//! against the fault table, connect to the route's target and hand both
//! streams to `link::serve`.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::faults::{Endpoint, Verdict};
use super::link::{self, Ends};
use super::shared::{Counters, Route, Shared};
use super::socket_table;

/// After a failed accept (out of descriptors), wait before the next.
const ACCEPT_BACKOFF_MS: u64 = 10;

/// Accept connections until the proxy shuts down; the listener closes then.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, route: Arc<Route>) {
    let mut shutdown = shared.subscribe_shutdown();
    let listen_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    // Runs for the life of the proxy: each turn takes one connection.
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                let route = route.clone();
                tokio::spawn(async move { admit(shared, route, stream, peer, listen_port).await });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await,
        }
    }
}

async fn admit(
    shared: Arc<Shared>,
    route: Arc<Route>,
    inbound: TcpStream,
    peer: SocketAddr,
    listen_port: u16,
) {
    Counters::add(&shared.counters.connections_accepted, 1);
    let open = shared.counters.connections_open.fetch_add(1, Ordering::Relaxed);
    let admitted = open < shared.config.connections_max as u64;
    if admitted {
        let opener = match route.from {
            Some(from) => Some(from),
            None => attribute(&shared, peer.port(), listen_port).await,
        };
        let ends = Ends { opener, acceptor: Some(Endpoint::Node(route.to)) };
        if let Some(outbound) = open_outbound(&shared, &route, &inbound, ends).await {
            link::serve(shared, ends, inbound, outbound).await;
            return; // serve() released the connection slot.
        }
    } else {
        Counters::add(&shared.counters.connections_refused, 1);
    }
    shared.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
}

/// The outbound half, unless the fault table or the target refuses.
async fn open_outbound(
    shared: &Shared,
    route: &Route,
    inbound: &TcpStream,
    ends: Ends,
) -> Option<TcpStream> {
    match shared.verdict(ends.opener, ends.acceptor) {
        Verdict::Open => {}
        Verdict::Reset => {
            let _ = inbound.set_zero_linger();
            Counters::add(&shared.counters.connections_cut, 1);
            return None;
        }
        Verdict::Close => {
            Counters::add(&shared.counters.connections_cut, 1);
            return None;
        }
    }
    let timeout = Duration::from_millis(shared.config.connect_timeout_ms);
    let outbound = match tokio::time::timeout(timeout, TcpStream::connect(route.target())).await {
        Ok(Ok(stream)) => stream,
        _ => {
            Counters::add(&shared.counters.connections_refused, 1);
            return None;
        }
    };
    // Small request/response messages must not wait for Nagle.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    Some(outbound)
}

/// The node (or the harness's own client) that opened a connection on a
/// shared route, from /proc.
async fn attribute(shared: &Shared, opener_port: u16, listen_port: u16) -> Option<Endpoint> {
    let pids = shared.pids();
    let found = tokio::task::spawn_blocking(move || {
        socket_table::find_source(opener_port, listen_port, &pids)
    })
    .await
    .ok()
    .flatten();
    if found.is_none() {
        Counters::add(&shared.counters.connections_unattributed, 1);
    }
    found
}
