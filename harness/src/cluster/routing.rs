//! The proxy routes of a cluster: one client route per node, and peer
//! routes per pair (each node its own view of its peers) or per destination
//! (one shared view, sources found from the socket table).
use std::net::SocketAddr;

use crate::proxy::{Endpoint, FaultProxy};

use super::db::PeerRouting;
use super::ports::NodePorts;
use super::{ClusterError, RoutesTo};

pub(super) struct Layout {
    pub client_addrs: Vec<SocketAddr>,
    pub routes_to: Vec<RoutesTo>,
    /// For each node, the address it dials for each other node.
    pub peer_dial: Vec<Vec<(usize, SocketAddr)>>,
    /// For each node, the shared route to each node's client port (empty
    /// unless asked for).
    pub client_peer_dial: Vec<Vec<(usize, SocketAddr)>>,
    /// For each node and each named peer port, the address it dials for
    /// each node's port of that name.
    pub named_peer_dial: Vec<Vec<Vec<(usize, SocketAddr)>>>,
}

pub(super) async fn open_routes(
    proxy: &FaultProxy,
    routing: PeerRouting,
    peers_dial_client_ports: bool,
    ports: &[NodePorts],
) -> Result<Layout, ClusterError> {
    let nodes = ports.len();
    if peers_dial_client_ports && routing != PeerRouting::Shared {
        return Err(ClusterError::Config("peers dialling client ports needs shared peer routing".into()));
    }
    let mut layout = Layout {
        client_addrs: Vec::with_capacity(nodes),
        routes_to: Vec::with_capacity(nodes),
        peer_dial: vec![Vec::new(); nodes],
        client_peer_dial: vec![Vec::new(); nodes],
        named_peer_dial: vec![vec![Vec::new(); ports.first().map_or(0, |p| p.named.len())]; nodes],
    };
    for (to, node_ports) in ports.iter().enumerate() {
        let client = proxy.add_route(Endpoint::Client, to, node_ports.client.addr()).await?;
        let mut dial = Vec::new();
        let peer = peer_routes(proxy, routing, nodes, to, node_ports.peer.addr(), &mut dial).await?;
        for (from, entry) in dial {
            layout.peer_dial[from].push(entry);
        }
        let mut named_peer = Vec::with_capacity(node_ports.named.len());
        for (index, port) in node_ports.named.iter().enumerate() {
            let mut dial = Vec::new();
            named_peer.push(peer_routes(proxy, routing, nodes, to, port.addr(), &mut dial).await?);
            for (from, entry) in dial {
                layout.named_peer_dial[from][index].push(entry);
            }
        }
        let mut client_shared = None;
        if peers_dial_client_ports {
            let listen = proxy.add_shared_route(to, node_ports.client.addr()).await?;
            for from in 0..nodes {
                layout.client_peer_dial[from].push((to, listen));
            }
            client_shared = Some(listen);
        }
        layout.client_addrs.push(client);
        layout.routes_to.push(RoutesTo { client, client_shared, peer, named_peer });
    }
    Ok(layout)
}

/// The proxy routes to one peer port of node `to`: per pair (one listener
/// for each other node) or shared (one listener every node dials, itself
/// included: the shared view is also what a node advertises as its own
/// address). Returns the listeners; `dial` gets (dialling node, (to, address)).
async fn peer_routes(
    proxy: &FaultProxy,
    routing: PeerRouting,
    nodes: usize,
    to: usize,
    target: SocketAddr,
    dial: &mut Vec<(usize, (usize, SocketAddr))>,
) -> Result<Vec<SocketAddr>, ClusterError> {
    let mut listeners = Vec::new();
    match routing {
        PeerRouting::PerPair => {
            for from in (0..nodes).filter(|from| *from != to) {
                let listen = proxy.add_route(Endpoint::Node(from), to, target).await?;
                dial.push((from, (to, listen)));
                listeners.push(listen);
            }
        }
        PeerRouting::Shared => {
            let listen = proxy.add_shared_route(to, target).await?;
            for from in 0..nodes {
                dial.push((from, (to, listen)));
            }
            listeners.push(listen);
        }
    }
    Ok(listeners)
}
