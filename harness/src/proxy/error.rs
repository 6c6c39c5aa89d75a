//! Errors of the fault proxy.
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy: cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("proxy: no route listens on {0}")]
    UnknownRoute(SocketAddr),
    #[error("proxy: route target {0} is not on loopback")]
    NotLoopback(SocketAddr),
    #[error("proxy: shut down")]
    ShutDown,
}
