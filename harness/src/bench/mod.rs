//! Benchmarks that print figures (`faultline bench check|proxy`); speed
//! targets live here, never in timed tests.
pub mod check;
pub mod proxy;
