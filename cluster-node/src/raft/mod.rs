//! The sans-IO Raft core (not built yet).
