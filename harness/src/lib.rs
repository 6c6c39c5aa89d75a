//! The faultline harness as a library: the `faultline` binary is a thin
//! wrapper around it, and the integration tests drive it directly.
//!
//! One run flows as data: spec (YAML + flags) → validated plan → runner,
//! which owns the I/O (cluster, proxy, clients, nemesis) and streams the
//! history; then the checkers decide.
pub mod bench;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod fields;
pub mod matrix;
pub mod messages;
pub mod nemesis;
pub mod plan;
pub mod proxy;
pub mod report;
pub mod results;
pub mod run;
pub mod systems;
pub mod verdict;

/// Exit code for a valid history.
pub const EXIT_VALID: u8 = 0;
/// Exit code for an invalid history.
pub const EXIT_INVALID: u8 = 1;
/// Exit code when the checkers could not decide (budget exhausted).
pub const EXIT_UNKNOWN: u8 = 2;
/// Exit code for a harness error (bad input, I/O failure, crash).
pub const EXIT_HARNESS_ERROR: u8 = 3;
