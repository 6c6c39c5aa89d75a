//! Errors of the cluster supervisor.
use std::path::PathBuf;

use crate::proxy::ProxyError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: invalid config: {0}")]
    Config(String),
    #[error("cluster: no node {0}")]
    NoSuchNode(usize),
    #[error("cluster: cannot allocate a port: {0}")]
    Port(#[source] std::io::Error),
    #[error("cluster: cannot prepare {path}: {source}")]
    Files { path: PathBuf, source: std::io::Error },
    #[error("cluster: cannot start node {node} ({program}): {source}")]
    Spawn { node: usize, program: PathBuf, source: std::io::Error },
    #[error("cluster: node {node} exited during startup (code {code:?}, signal {signal:?}{hint}); see {log}", hint = startup_hint(*code))]
    ExitedEarly { node: usize, code: Option<i32>, signal: Option<i32>, log: PathBuf },
    #[error("cluster: node {node} not ready after {timeout_ms} ms; see {log}")]
    NotReady { node: usize, timeout_ms: u64, log: PathBuf },
    #[error("cluster: node {node} is {state}, cannot {action}")]
    WrongState { node: usize, state: &'static str, action: &'static str },
    #[error("cluster: signal to node {node}: {source}")]
    Signal { node: usize, source: nix::Error },
    #[error("cluster: the supervisor thread is gone")]
    SupervisorGone,
    #[error("cluster: {program} not found: {hint}")]
    ProgramNotFound { program: &'static str, hint: String },
    #[error("cluster: node {node}'s lazyfs volume: {message}; see {log}")]
    Volume { node: usize, message: String, log: PathBuf },
    #[error("cluster: cannot {action} node {node}: {message}")]
    Membership { node: usize, action: &'static str, message: String },
    #[error("cluster: node {node} on its host: {message}")]
    Remote { node: usize, message: String },
    #[error(transparent)]
    Host(#[from] super::hosts::HostError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// What an exit code of a shell-launched node usually means.
fn startup_hint(code: Option<i32>) -> &'static str {
    match code {
        Some(127) => ": command not found",
        Some(126) => ": command not executable",
        _ => "",
    }
}
