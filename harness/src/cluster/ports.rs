//! The ports each node binds itself, reserved (see [`crate::ports`]) from
//! the cluster's start until the node's launch.
use super::ClusterError;
pub(crate) use crate::ports::PortReservation;

/// A fresh port (see [`crate::ports::reserve`]).
pub(super) fn reserve() -> Result<PortReservation, ClusterError> {
    crate::ports::reserve().map_err(ClusterError::Port)
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

