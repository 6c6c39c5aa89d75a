//! faultline's checkers: the history schema, models, the linearizability
//! search, durability checks, and readers for other tools' history formats.
//!
//! This crate does no I/O beyond reading the files it is asked to read.
pub mod history;

pub use history::{Event, EventType, Process};
