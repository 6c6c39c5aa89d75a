//! faultline-node: a key-value store replicated with Raft over a write-ahead
//! log. The Raft core (`raft`) does no I/O; the server wraps it with tokio.
pub mod bugs;
pub mod config;
pub mod kv;
pub mod mode;
pub mod protocol;
pub mod raft;
pub mod server;
pub mod snapshot;
pub mod transport;
pub mod wal;
pub mod wire;
