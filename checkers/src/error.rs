//! Errors of the checkers crate: every one names the file line it is about.
use thiserror::Error;

/// Why a history could not be read.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty history: no events")]
    Empty,
    #[error("unknown history format (expected faultline JSONL, Jepsen log lines or Jepsen EDN maps)")]
    UnknownFormat,
    #[error("line {line}: not a history event: {message}")]
    BadLine { line: u32, message: String },
    #[error("line {line}: {message}")]
    Pairing { line: u32, message: String },
}

/// Why a history cannot be checked with the chosen model.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error("unknown model {0:?} (known: register, cas-register, kv, set, list-append)")]
    UnknownModel(String),
    #[error("line {line}: model {model} cannot check this operation: {message}")]
    BadOp { line: u32, model: &'static str, message: String },
    #[error("cannot guess a model: history has no client operations")]
    NoOps,
}
