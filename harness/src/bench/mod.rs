//! Benchmarks that print figures (`faultline bench check|proxy|mutants|txn`);
//! speed and detection targets live here, never in timed tests.
pub mod check;
pub mod mutants;
pub mod proxy;
pub mod txn;
